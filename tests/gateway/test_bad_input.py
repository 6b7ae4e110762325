"""Bad and hostile requests against the real gateway: each gets its 4xx with the OpenAI error object naming the
parameter and the limit, before any image is decoded or Triton is called, while a long generation streams
through the same gateway untouched; the gateway and Triton serve afterwards."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator

import httpx
import openai
import pytest

from client import VLMClient
from gateway.process import GatewayProcess
from serving.launcher import TritonServer
from tests.gateway.conftest import API_KEY, data_url
from tests.gateway.processes import ImageServer
from tests.gateway.raw_http import gzip_bomb, send, zeros
from tests.images import encode, scene, truncated_jpeg

AUTH = {"Authorization": f"Bearer {API_KEY}"}
LONG_STREAM_TOKENS = 200


def chat_body(content: list | str, **extra: object) -> dict:
    return {"model": "llava", "messages": [{"role": "user", "content": content}], "max_tokens": 4, **extra}


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def assert_error(response: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and (code is None or error["code"] == code), error
    assert "Traceback" not in error["message"] and "/tmp" not in error["message"] and "/work" not in error["message"]
    return error


def assert_still_serving(http: httpx.Client, server: TritonServer) -> None:
    assert http.get("/health").status_code == 200
    assert http.get("/ready").status_code == 200
    reply = http.post("/v1/chat/completions", json=chat_body("still there?"))
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] >= 1
    with VLMClient(server.grpc_url) as direct:
        assert direct.embed_texts(["triton is up"]).shape[0] == 1


@pytest.fixture(scope="module")
def background_stream(gateway: GatewayProcess, server: TritonServer) -> Iterator[dict]:
    """A long generation streaming through the gateway while this module's bad requests arrive."""
    image = encode(scene(seed=90))
    outcome: dict = {}

    def stream() -> None:
        with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=300) as sdk:
            chunks = sdk.chat.completions.create(
                model="llava",
                messages=[{"role": "user", "content": [image_part(data_url(image)), {"type": "text", "text": "go"}]}],
                max_tokens=LONG_STREAM_TOKENS,
                stream=True,
            )
            outcome["text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    thread = threading.Thread(target=stream)
    thread.start()
    yield outcome
    thread.join(timeout=300)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "go"}]}]
    with VLMClient(server.grpc_url) as direct:
        assert outcome["text"] == direct.generate(messages, [image], max_tokens=LONG_STREAM_TOKENS).text


@pytest.fixture(scope="module")
def strict_gateway(
    server: TritonServer, image_server: ImageServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """The default address policy (public addresses only), with the loopback image server's host names allowed;
    no API keys."""
    log = tmp_path_factory.mktemp("strict") / "gateway.log"
    args = ["--allow-image-host", "127.0.0.1", "--allow-image-host", "localhost"]
    with GatewayProcess(server.grpc_url, log, *args) as running:
        yield running


def test_json_nested_150000_deep_is_refused_and_both_servers_still_serve(
    gateway: GatewayProcess, http: httpx.Client, server: TritonServer, background_stream: dict
) -> None:
    body = b"[" * 150_000 + b"]" * 150_000  # ~300 KB: what kills tritonserver 2.51's HTTP frontend
    reply = http.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    error = assert_error(reply, 400, code="json_too_deep")
    assert "150000" in error["message"] and "32" in error["message"]
    nested: list = []
    for _ in range(40):  # a valid request shape with a deep value: refused before validation reads it
        nested = [nested]
    assert_error(http.post("/v1/chat/completions", json=chat_body("x", metadata=nested)), 400, code="json_too_deep")
    assert_still_serving(http, server)


def test_a_2_gib_gzip_body_is_refused_once_it_inflates_past_the_cap(
    gateway: GatewayProcess, http: httpx.Client, server: TritonServer, background_stream: dict
) -> None:
    bomb = gzip_bomb(2 * 1024**3)  # 2 MB on the wire
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip", "Content-Length": str(len(bomb))}
    reply = send(gateway.url, "/v1/chat/completions", headers, [bomb])
    assert reply.status == 413, reply.body
    assert json.loads(reply.body)["error"]["code"] == "request_too_large"
    inflated = http.post(
        "/v1/embeddings",
        content=gzip.compress(json.dumps({"model": "clip", "input": "a red circle"}).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert inflated.status_code == 200 and len(inflated.json()["data"]) == 1
    assert_error(http.post("/v1/embeddings", content=b"not gzip", headers={"Content-Encoding": "gzip"}), 400)
    assert_error(http.post("/v1/embeddings", content=b"{}", headers={"Content-Encoding": "br"}), 415)
    assert_still_serving(http, server)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_100_mb_body_is_refused_with_413(
    gateway: GatewayProcess, http: httpx.Client, server: TritonServer, background_stream: dict, framing: str
) -> None:
    size = 100 * 1024 * 1024
    length = {"Content-Length": str(size)} if framing == "content-length" else {"Transfer-Encoding": "chunked"}
    reply = send(
        gateway.url, "/v1/chat/completions", {**AUTH, "Content-Type": "application/json", **length}, zeros(size)
    )
    assert reply.status == 413, reply.body
    assert "33554432" in json.loads(reply.body)["error"]["message"]
    assert_still_serving(http, server)


def test_malformed_json_is_a_400_not_a_500(http: httpx.Client, background_stream: dict) -> None:
    for body in (b"{", b'{"model": "llava", "messages": [}', b"\xff\xfe", b"[]", b"null"):
        assert_error(http.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}), 400)


def test_a_file_that_is_not_an_image_is_a_400_naming_where_it_was(
    http: httpx.Client, server: TritonServer, background_stream: dict
) -> None:
    text_url = data_url(b"just some text, not pixels", "image/png")
    reply = http.post("/v1/chat/completions", json=chat_body([image_part(text_url), {"type": "text", "text": "?"}]))
    assert_error(reply, 400, "messages[0].content[0].image_url.url", "invalid_image")
    upload = http.post("/analyze-image", files={"file": ("notes.txt", b"hello")}, data={"query": "what?"})
    assert_error(upload, 400, "file", "invalid_image")
    items = [{"type": "image_url", "image_url": {"url": data_url(encode(scene(seed=3)))}}, "x", image_part(text_url)]
    assert_error(http.post("/v1/embeddings", json={"model": "clip", "input": items}), 400, "input[2].image_url.url")
    broken = http.post("/v1/chat/completions", json=chat_body([image_part(data_url(truncated_jpeg(), "image/jpeg"))]))
    error = assert_error(broken, 400, "messages[0].content[0].image_url.url")  # Triton's decoder caught this one
    assert "in ensemble" not in error["message"]
    for url, code in (("data:image/png;base64,@@@", "invalid_image_url"), ("ftp://x/y.png", "invalid_image_url")):
        reply = http.post("/v1/chat/completions", json=chat_body([image_part(url)]))
        assert_error(reply, 400, "messages[0].content[0].image_url.url", code)
    assert_still_serving(http, server)


def test_too_many_images_is_a_400_naming_the_limit(http: httpx.Client) -> None:
    image = image_part(data_url(encode(scene(seed=4))))
    error = assert_error(http.post("/v1/chat/completions", json=chat_body([image] * 5)), 400, "messages")
    assert "at most 4 images" in error["message"]
    error = assert_error(http.post("/v1/embeddings", json={"model": "clip", "input": [image] * 5}), 400, "input")
    assert "at most 4 images" in error["message"]


def test_a_private_address_image_url_is_refused_by_default(
    strict_gateway: GatewayProcess, image_server: ImageServer, server: TritonServer
) -> None:
    before = len(image_server.requests)
    with httpx.Client(base_url=strict_gateway.url, timeout=60) as open_gateway:
        for url in (image_server.url("/scene.png"), image_server.url("/scene.png", host="localhost")):
            reply = open_gateway.post("/v1/chat/completions", json=chat_body([image_part(url)]))
            assert_error(reply, 400, "messages[0].content[0].image_url.url", "address_not_allowed")
        other = open_gateway.post("/v1/chat/completions", json=chat_body([image_part("http://example.com/a.png")]))
        assert_error(other, 400, "messages[0].content[0].image_url.url", "host_not_allowed")
        assert open_gateway.post("/v1/embeddings", json={"model": "clip", "input": "no key needed"}).status_code == 200
    assert len(image_server.requests) == before  # nothing reached the private address


def test_a_redirect_to_a_private_address_is_not_followed(
    http: httpx.Client, image_server: ImageServer, server: TritonServer, background_stream: dict
) -> None:
    for path in ("/to-metadata", "/to-loopback"):
        reply = http.post("/v1/chat/completions", json=chat_body([image_part(image_server.url(path))]))
        error = assert_error(reply, 400, "messages[0].content[0].image_url.url", "redirect_not_followed")
        assert "302" in error["message"]
    assert_still_serving(http, server)


def test_allowed_image_urls_are_fetched_capped_and_timed(
    http: httpx.Client, image_server: ImageServer, scene_png: bytes, server: TritonServer
) -> None:
    fetched = http.post(
        "/v1/embeddings",
        json={"model": "clip", "input": [image_part(image_server.url("/scene.png"))], "encoding_format": "float"},
    )
    assert fetched.status_code == 200
    with VLMClient(server.grpc_url) as direct:
        expected = direct.embed_images([scene_png])[0]
    assert abs(sum(a * b for a, b in zip(fetched.json()["data"][0]["embedding"], expected, strict=True)) - 1) < 1e-4
    param = "input[0].image_url.url"
    for path, code in (
        ("/huge.png", "image_too_large"),
        ("/missing.png", "fetch_failed"),
        ("/notes.txt", "invalid_image"),
        ("/slow", "fetch_timeout"),
    ):
        reply = http.post("/v1/embeddings", json={"model": "clip", "input": [image_part(image_server.url(path))]})
        assert_error(reply, 400, param, code)
