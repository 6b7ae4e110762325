"""benchmarks.gateway: the chat requests the load generator sends to vlm-gateway or any OpenAI-compatible server,
and how it reads their streams, against a stand-in server that answers as vLLM's does."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from benchmarks.gateway import GatewayLlava
from benchmarks.workloads import Payload

pytestmark = pytest.mark.timeout(60)

PAYLOAD = Payload((b"\xff\xd8first", b"\xff\xd8second"), ("what is this?", "and this?"), 1, 1, 5)


class FakeOpenAI(http.server.BaseHTTPRequestHandler):
    """Streams ``max_tokens`` one-character deltas as vLLM does: a role-only first chunk, the content, a finish
    chunk, a usage chunk with no choices, then [DONE]; not streamed, one JSON answer."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator's connections expect
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        usage = {"prompt_tokens": 55, "completion_tokens": body["max_tokens"]}
        if not body.get("stream"):
            self._send(json.dumps({"choices": [{"message": {"content": "a"}}], "usage": usage}), "application/json")
            return
        chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
        chunks += [{"choices": [{"index": 0, "delta": {"content": "a"}}]} for _ in range(body["max_tokens"])]
        chunks += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}, {"choices": [], "usage": usage}]
        events = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
        self._send(events, "text/event-stream")

    def _send(self, text: str, kind: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    FakeOpenAI.bodies = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_a_chat_request_is_greedy_of_a_fixed_length_with_its_image_as_a_data_url() -> None:
    path, body, images = GatewayLlava("http://gateway:9000", "http", PAYLOAD).gateway_request(1)
    assert (path, images, body["model"]) == ("/v1/chat/completions", 1, "llava")
    assert (body["max_tokens"], body["min_tokens"], body["ignore_eos"], body["temperature"]) == (5, 5, True, 0.0)
    assert body["stream"] and body["stream_options"] == {"include_usage": True}
    image, text = body["messages"][0]["content"]
    assert text == {"type": "text", "text": "and this?"}
    prefix = "data:image/jpeg;base64,"
    assert image["type"] == "image_url" and image["image_url"]["url"].startswith(prefix)
    sent = base64.b64decode(image["image_url"]["url"][len(prefix) :])
    assert sent.endswith(b"second") and sent != b"\xff\xd8second"  # the image, with a serial that defeats caches


def test_the_model_name_and_extra_fields_are_the_callers() -> None:
    workload = GatewayLlava("http://x:1", "http", PAYLOAD, model="other", extra_body={"add_special_tokens": True})
    _, body, _ = workload.gateway_request(0)
    assert body["model"] == "other" and body["add_special_tokens"] is True


def test_a_stream_is_timed_to_its_first_content_and_counted_from_its_usage(server: str) -> None:
    workload = GatewayLlava(server, "http", PAYLOAD)
    for n in range(2):  # the second request reuses the connection
        sample = workload.send(n)
        assert (sample.output_tokens, sample.prompt_tokens, sample.images) == (5, 55, 1)
        assert sample.start < sample.first_token <= sample.end


def test_the_open_loop_reads_the_same_stream(server: str) -> None:
    workload = GatewayLlava(server, "http", PAYLOAD)

    async def one() -> Any:
        async with workload.async_client() as session:
            return await workload.send_async(session, 0, 0.0)

    sample = asyncio.run(one())
    assert (sample.output_tokens, sample.prompt_tokens) == (5, 55)


def test_usage_asks_for_one_token_without_a_stream(server: str) -> None:
    workload = GatewayLlava(server, "http", PAYLOAD, extra_body={"add_special_tokens": True})
    assert workload.usage(0) == {"prompt_tokens": 55, "completion_tokens": 1}
    (body,) = FakeOpenAI.bodies
    assert (body["max_tokens"], body["min_tokens"], body["stream"]) == (1, 1, False)
    assert "stream_options" not in body and body["add_special_tokens"] is True
