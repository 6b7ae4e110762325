"""Overload is refused at once with a typed busy error, never queued without bound: Triton's queue policy on
the python steps and encoders, and the decoder's bounded waiting list. Admitted requests are all answered."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from benchmarks.inputs import unique
from client import RetryPolicy, ServerBusyError, VLMClient, VLMError
from export.families.clip.spec import CLIP_PREPROCESS
from export.families.llava.spec import MAX_NUM_SEQS, MAX_WAITING_REQUESTS
from serving.launcher import TritonServer
from tests.server.statistics import wait_for_idle_decoder
from tests.server.test_bad_input import assert_server_still_serving

NO_RETRY = RetryPolicy(attempts=1)
# What the entry step admits: one request running on each instance and its full queue; floods send more.
PREPROCESS_ADMITS = CLIP_PREPROCESS.resources.instance_count + CLIP_PREPROCESS.queue.max_queue_size
IMAGE_FLOOD = PREPROCESS_ADMITS + 16
GENERATION_FLOOD = MAX_NUM_SEQS + MAX_WAITING_REQUESTS + 8


def slow_image_request() -> list[bytes]:
    """32 large PNGs (about 1 s of decoding): a few of these keep the preprocess instances busy."""
    gradient = Image.linear_gradient("L").resize((1900, 1900)).convert("RGB")
    buffer = io.BytesIO()
    gradient.save(buffer, format="PNG")
    return [buffer.getvalue()] * 32


def flood(call: Callable[[int], object], size: int) -> list[tuple[str, float]]:
    """``size`` calls at once: (outcome, seconds) each. The outcome is "ok", "busy" (refused at the door),
    "expired" (admitted, then refused after the queue's timeout) or the error's class."""

    def timed(index: int) -> tuple[str, float]:
        started = time.monotonic()
        try:
            call(index)
            outcome = "ok"
        except ServerBusyError as error:
            outcome = "expired" if "timeout expired" in str(error).lower() else "busy"
        except VLMError as error:
            outcome = type(error).__name__
        return outcome, time.monotonic() - started

    with ThreadPoolExecutor(size) as pool:
        return list(pool.map(timed, range(size)))


def test_an_image_flood_is_refused_as_busy_sooner_than_any_admitted_request_is_answered(server: TritonServer) -> None:
    images = slow_image_request()

    def embed(index: int) -> object:
        with VLMClient(server.grpc_url, timeout=120, retry=NO_RETRY) as client:
            return client.embed_images([*images[:-1], unique(images[-1], index)])  # no two alike: no cache hits

    outcomes = flood(embed, IMAGE_FLOOD)
    busy = [seconds for outcome, seconds in outcomes if outcome == "busy"]
    admitted = [seconds for outcome, seconds in outcomes if outcome == "ok"]
    expired = [seconds for outcome, seconds in outcomes if outcome == "expired"]
    assert len(busy) + len(admitted) + len(expired) == IMAGE_FLOOD, outcomes
    # at most what the preprocess step admits, and a few the encoder has taken from it meanwhile
    assert len(busy) >= IMAGE_FLOOD - PREPROCESS_ADMITS - 4, outcomes
    assert admitted and max(busy) < min(admitted), outcomes
    # admitted requests that waited past the queue's timeout behind the slow ones are refused then, not kept
    assert all(seconds >= CLIP_PREPROCESS.queue.timeout_us / 1e6 for seconds in expired), outcomes
    assert_server_still_serving(server)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_generation_flood_past_the_decoders_waiting_list_is_refused_as_busy(
    server: TritonServer, protocol: str
) -> None:
    url = server.grpc_url if protocol == "grpc" else server.http_url
    story = [{"role": "user", "content": "Tell me a long story."}]

    # ignore_eos: every answer runs its whole 1,000 tokens (seconds on tiny-llava), so no slot frees up during
    # the flood.
    def generate(index: int) -> object:
        with VLMClient(url, protocol=protocol, timeout=120, retry=NO_RETRY) as client:
            return list(client.generate_stream(story, max_tokens=1000, ignore_eos=True))

    outcomes = flood(generate, GENERATION_FLOOD)
    counts = {outcome: sum(1 for o, _ in outcomes if o == outcome) for outcome, _ in outcomes}
    assert counts.get("busy", 0) >= GENERATION_FLOOD - MAX_NUM_SEQS - MAX_WAITING_REQUESTS, counts
    assert counts.get("busy", 0) + counts.get("ok", 0) == GENERATION_FLOOD, counts
    busy = [seconds for outcome, seconds in outcomes if outcome == "busy"]
    admitted = [seconds for outcome, seconds in outcomes if outcome == "ok"]
    assert max(busy) < min(admitted), outcomes
    wait_for_idle_decoder(server)


def test_the_clients_retries_back_off_on_busy_and_give_up_with_the_busy_error(server: TritonServer) -> None:
    images = slow_image_request()
    failures: list[tuple[int, VLMError]] = []
    policy = RetryPolicy(attempts=2, backoff_s=0.05, on_failure=lambda attempt, err: failures.append((attempt, err)))

    def embed(index: int) -> object:
        with VLMClient(server.grpc_url, timeout=120, retry=policy) as client:
            return client.embed_images([*images[:-1], unique(images[-1], 100 + index)])

    outcomes = flood(embed, IMAGE_FLOOD)
    assert {outcome for outcome, _ in outcomes} <= {"ok", "busy", "expired"}
    assert any(isinstance(error, ServerBusyError) and attempt == 1 for attempt, error in failures)
    gave_up = [attempt for attempt, error in failures if attempt == 2]
    assert len(gave_up) == sum(1 for outcome, _ in outcomes if outcome != "ok")
