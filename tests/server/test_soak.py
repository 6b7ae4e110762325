"""Soak (``make test-long``): 10,000 mixed requests (CLIP, LLaVA streams, cancellations, bad inputs) over both
protocols. After warm-up, the resident memory of tritonserver and its stubs grows by less than 5%, no file
descriptor is leaked, and at the end nothing is pending."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from client import InvalidInputError, VLMClient, VLMError
from serving.launcher import TritonServer
from tests.images import encode, scene
from tests.server.serve_process import wait_for
from tests.server.test_burst import pending_work
from tests.server.test_hostile import assert_serves_clip_and_llava
from tests.server.test_llava_bad_input import IMAGE_TURN, TEXT_TURN

pytestmark = [pytest.mark.long, pytest.mark.timeout(1800)]
WARMUP, TOTAL, WORKERS = 1_000, 10_000, 8
IMAGES = [encode(scene(seed=seed)) for seed in range(32)]


def one_request(client: VLMClient, n: int, rng: random.Random) -> str:
    """Request ``n`` of the mix; what happened ("ok", "invalid", "cancelled")."""
    kind = rng.choices(["text", "image", "rank", "stream", "cancel", "bad"], [40, 20, 10, 15, 5, 10])[0]
    image = IMAGES[n % len(IMAGES)]
    if kind == "text":
        client.embed_texts([f"soak text {n}"])
    elif kind == "image":
        client.embed_images([image])
    elif kind == "rank":
        client.rank_texts([image], [f"a label {n}", "another label"])
    elif kind == "stream":
        list(client.generate_stream(IMAGE_TURN if n % 2 else TEXT_TURN, [image] if n % 2 else [], max_tokens=8))
    elif kind == "cancel":
        stream = client.generate_stream(TEXT_TURN, max_tokens=200)
        next(stream)
        stream.close()  # leaving early cancels it on the server
        return "cancelled"
    else:
        try:
            rng.choice([lambda: client.embed_images([b"not an image"]), lambda: client.embed_texts([""])])()
        except InvalidInputError:
            return "invalid"
        raise AssertionError("a bad input was accepted")
    return "ok"


def run_requests(server: TritonServer, numbers: range) -> Counter[str]:
    def worker(worker_id: int) -> Counter[str]:
        rng = random.Random(worker_id * 1_000_003 + numbers.start)
        outcomes: Counter[str] = Counter()
        protocol = "grpc" if worker_id % 2 else "http"
        with VLMClient(server.grpc_url if protocol == "grpc" else server.http_url, protocol=protocol) as client:
            for n in itertools.islice(numbers, worker_id, None, WORKERS):
                try:
                    outcomes[one_request(client, n, rng)] += 1
                except VLMError as error:
                    outcomes[f"failed: {type(error).__name__}: {str(error)[:80]}"] += 1
        return outcomes

    with ThreadPoolExecutor(WORKERS) as pool:
        return sum(pool.map(worker, range(WORKERS)), Counter())


def footprint(server: TritonServer) -> tuple[int, dict[str, int]]:
    """(resident bytes, open file descriptors by process) of tritonserver and every stub and engine process."""
    assert server.process is not None
    root = psutil.Process(server.process.pid)
    processes = [root, *root.children(recursive=True)]
    fds = {f"{p.pid} {' '.join(p.cmdline()[:2])[-60:]}": p.num_fds() for p in processes}
    return sum(p.memory_info().rss for p in processes), fds


def test_10000_mixed_requests_leak_no_memory_no_descriptors_and_leave_nothing_pending(server: TritonServer) -> None:
    warmup = run_requests(server, range(WARMUP))
    wait_for(lambda: pending_work(server) == 0, "the warm-up is over", timeout_s=60, interval_s=0.5)
    rss_before, fds_before = footprint(server)
    outcomes = run_requests(server, range(WARMUP, TOTAL))
    wait_for(lambda: pending_work(server) == 0, "nothing is pending or active", timeout_s=60, interval_s=0.5)
    rss_after, fds_after = footprint(server)
    failed = {k: v for k, v in (warmup + outcomes).items() if k.startswith("failed")}
    assert not failed, failed
    assert sum(outcomes.values()) == TOTAL - WARMUP
    assert rss_after < 1.05 * rss_before, f"RSS grew from {rss_before >> 20} MiB to {rss_after >> 20} MiB"
    grown = {
        name: (fds_before.get(name, 0), count) for name, count in fds_after.items() if count > fds_before.get(name, 0)
    }
    assert not grown, f"file descriptors grew (before, after): {grown}"
    assert_serves_clip_and_llava(server)
