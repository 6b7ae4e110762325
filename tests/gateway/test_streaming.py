"""The chat stream on the wire: OpenAI's ``chat.completion.chunk`` server-sent events in order, a rejection
before the stream answered with its own status, and a client that disconnects mid-stream freeing its decoder
slot on Triton within a second."""

from __future__ import annotations

import json
import time

import httpx

from serving.launcher import TritonServer
from tests.gateway.conftest import data_url
from tests.images import encode, scene
from tests.server.statistics import (
    finished_requests,
    metric_total,
    wait_for_idle_decoder,
    wait_until,
)

LONG = 1800  # with ignore_eos, a stream that lasts seconds on tiny-llava, so it outlives its cancellation


def events(response: httpx.Response) -> list[str]:
    return [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]


def ask(content: object, **extra: object) -> dict:
    return {"model": "llava", "messages": [{"role": "user", "content": content}], "stream": True, **extra}


def test_a_stream_is_role_then_deltas_then_finish_then_usage_then_done(http: httpx.Client) -> None:
    image = data_url(encode(scene(seed=60)))
    content = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "describe."}]
    body = ask(content, max_tokens=20, logprobs=True, n=2, stream_options={"include_usage": True})
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        data = events(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "llava" for c in chunks)
    first = chunks[0]["choices"]
    assert [(c["index"], c["delta"]) for c in first] == [
        (0, {"role": "assistant", "content": ""}),
        (1, {"role": "assistant", "content": ""}),
    ]
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] >= 2
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks[1:-1] if c["choices"][0]["index"] == index]
        final = mine[-1]
        assert final["finish_reason"] in ("stop", "length") and final["delta"] == {}
        assert all(c["finish_reason"] is None for c in mine[:-1])
        text = "".join(c["delta"].get("content", "") for c in mine)
        tokens = final["logprobs"]["content"]  # every token's logprob rides on the choice's last chunk
        assert "".join(t["token"] for t in tokens) == text
        assert all(t["bytes"] == list(t["token"].encode()) and t["top_logprobs"] == [] for t in tokens)
    assert usage["usage"]["completion_tokens"] == sum(
        len(c["choices"][0]["logprobs"]["content"]) for c in chunks[1:-1] if c["choices"][0]["finish_reason"]
    )


def test_a_rejected_stream_answers_with_its_status_not_an_event(http: httpx.Client) -> None:
    with http.stream("POST", "/v1/chat/completions", json=ask("hi", max_tokens=100_000)) as response:
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/json")
        error = json.loads(response.read())["error"]
    assert error["param"] == "max_tokens" and error["message"].startswith("max_tokens: ")


def test_disconnecting_mid_stream_frees_the_decoder_slot_within_a_second(
    http: httpx.Client, server: TritonServer
) -> None:
    wait_for_idle_decoder(server)
    cancelled = finished_requests(server, "cancelled")
    image = data_url(encode(scene(seed=61)))
    content = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "describe the image."}]
    with http.stream(
        "POST", "/v1/chat/completions", json=ask(content, max_tokens=LONG, n=2, ignore_eos=True)
    ) as response:
        assert response.status_code == 200
        # Held in a name: a line iterator dropped mid-stream is closed, and httpcore then closes the connection.
        lines = response.iter_lines()
        for line in lines:  # until some text has come
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break
        wait_until(lambda: metric_total(server, "vlm_decoder_active_sequences") == 2, "both choices run")
    closed = time.monotonic()  # leaving the block closed the connection with the stream unfinished
    wait_until(lambda: metric_total(server, "vlm_decoder_active_sequences") == 0, "the slots are free", timeout_s=1.0)
    freed_after = time.monotonic() - closed
    assert freed_after <= 1.0
    wait_until(lambda: finished_requests(server, "cancelled") == cancelled + 2, "both choices are cancelled")
