"""A hostile client against the real server's ports, one row at a time: each attack is refused (or survived) and
afterwards the server still answers a good CLIP and a good LLaVA request. The two bodies that kill tritonserver
2.51 outright (JSON nested 150,000 deep, a gzip bomb of 2 GiB) are in test_supervision.py, where vlm-serve
restarts it; the gateway, the public front door, refuses both before they reach Triton."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import time
from collections.abc import Callable

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from client import VLMClient
from serving.launcher import TritonServer
from tests.images import decompression_bomb, encode, scene
from tests.server.test_bad_input import LEAKS
from tests.server.test_control_plane import RESTRICTED_HTTP
from tests.server.test_llava_bad_input import IMAGE_TURN, messages_array, stream_error

INFER = "/v2/models/clip_text_embed/infer"
GOOD_TEXT = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a hostile day"]}]}
_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})")


def send_http(server: TritonServer, head: list[str], body: bytes = b"", read: bool = True) -> int:
    """One raw HTTP/1.1 request; the status code (0: no answer before the socket timed out)."""
    host, port = server.http_url.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall("\r\n".join([*head, f"Host: {host}"]).encode() + b"\r\n\r\n" + body)
        if not read:
            return 0
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            return 0
    match = _STATUS.match(answer)
    assert match, answer[:200]
    text = answer.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
    assert not LEAKS.search(text), f"the answer leaks internals: {text!r}"
    return int(match.group(1))


def post(server: TritonServer, body: bytes, *headers: str, path: str = INFER) -> int:
    return send_http(server, [f"POST {path} HTTP/1.1", f"Content-Length: {len(body)}", *headers], body)


def binary_size_lie(server: TritonServer) -> int:
    header = json.dumps(
        {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 10**6}}]}
    ).encode()
    body = header + b"\x05\x00\x00\x00hello"
    return post(server, body, f"Inference-Header-Content-Length: {len(header)}")


def header_size_lie(server: TritonServer) -> int:
    body = json.dumps(GOOD_TEXT).encode()
    return post(server, body, "Inference-Header-Content-Length: 99999")


def huge_declared_length(server: TritonServer) -> None:
    """Declares a terabyte, sends a few bytes and hangs up: nothing to answer; the server must serve on."""
    body = json.dumps(GOOD_TEXT).encode()
    send_http(server, [f"POST {INFER} HTTP/1.1", "Content-Length: 1000000000000"], body, read=False)


def half_open_connections(server: TritonServer) -> None:
    """64 connections that send half a request and stay open while good requests are served."""
    host, port = server.http_url.split(":")
    sockets = []
    try:
        for _ in range(64):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(f"POST {INFER} HTTP/1.1\r\nHost: {host}\r\nContent-Le".encode())
            sockets.append(sock)
        assert_serves_clip_and_llava(server)
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


def grpc_error(server: TritonServer, model: str, inputs: list[grpcclient.InferInput]) -> int:
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        try:
            client.infer(model, inputs, client_timeout=30)
        except InferenceServerException as error:
            assert not LEAKS.search(error.message() or ""), error.message()
            return 400 if str(error.status()) == "StatusCode.INVALID_ARGUMENT" else 500
    return 200


def tensor(name: str, array: np.ndarray, datatype: str, shape: list[int] | None = None) -> grpcclient.InferInput:
    value = grpcclient.InferInput(name, shape or list(array.shape), datatype)
    value.set_data_from_numpy(array)
    return value


def wrong_datatype(server: TritonServer) -> int:
    return grpc_error(server, "clip_text_embed", [tensor("text", np.ones(1, np.float32), "FP32")])


def wrong_shape(server: TritonServer) -> int:
    return post(
        server,
        json.dumps({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["only one"]}]}).encode(),
    )


def image_abuse(payload: bytes) -> Callable[[TritonServer], int]:
    def attack(server: TritonServer) -> int:
        return grpc_error(server, "clip_image_embed", [tensor("image", np.array([payload], dtype=object), "BYTES")])

    return attack


def text_abuse(texts: list[bytes]) -> Callable[[TritonServer], int]:
    def attack(server: TritonServer) -> int:
        return grpc_error(server, "clip_text_embed", [tensor("text", np.array(texts, dtype=object), "BYTES")])

    return attack


def conversation_abuse(arrays: dict[str, np.ndarray], model: str = "llava_decoder") -> Callable[[TritonServer], int]:
    def attack(server: TritonServer) -> int:
        message = stream_error(server, model, arrays)
        assert not LEAKS.search(message), message
        return 400

    return attack


def control_without_key(server: TritonServer) -> int:
    statuses = {post(server, json.dumps(body or {}).encode(), path=path) for _, path, body in RESTRICTED_HTTP}
    return statuses.pop() if len(statuses) == 1 else 0


# Each row attacks and returns the status it was answered with, or None when there is no answer to read (the
# connection was the attack); either way the test then needs good requests to succeed.
HOSTILE: dict[str, Callable[[TritonServer], int | None]] = {
    "malformed-json": lambda s: post(s, b"{{{{{"),
    "json-nested-50000-deep": lambda s: post(s, b"[" * 50_000 + b"]" * 50_000),
    "json-not-an-object": lambda s: post(s, b'"inputs"'),
    "wrong-datatype": wrong_datatype,
    "wrong-shape": wrong_shape,
    "binary-size-lie": binary_size_lie,
    "inference-header-size-lie": header_size_lie,
    "huge-declared-content-length": huge_declared_length,
    "gzip-bomb-64MiB": lambda s: post(s, gzip.compress(b" " * (64 << 20)), "Content-Encoding: gzip"),
    "gzip-body-that-is-not-gzip": lambda s: post(s, b"plain bytes", "Content-Encoding: gzip"),
    "half-open-connections": half_open_connections,
    "control-plane-without-the-key": control_without_key,
    "image-not-an-image": image_abuse(b"\x89PNG\r\n\x1a\n but not really"),
    "image-decompression-bomb": image_abuse(decompression_bomb()),
    "image-empty": image_abuse(b""),
    "text-invalid-utf8": text_abuse([b"\xff\xfe\xfd"]),
    "text-too-long": text_abuse([b"x" * 20_000]),
    "text-too-many": text_abuse([b"a"] * 65),
    "conversation-not-json": conversation_abuse({"messages": np.array([b"[{"], dtype=object)}),
    "conversation-too-large": conversation_abuse(
        {"messages": messages_array([{"role": "user", "content": "x" * 70_000}])}
    ),
    "conversation-unknown-role": conversation_abuse({"messages": messages_array([{"role": "root", "content": "hi"}])}),
    "conversation-image-token-in-text": conversation_abuse(
        {"messages": messages_array([{"role": "user", "content": "<image> smuggled"}])}
    ),
    "conversation-max-tokens-past-the-context": conversation_abuse(
        {"messages": messages_array([{"role": "user", "content": "hi"}]), "max_tokens": np.array([10**6], np.int32)}
    ),
    "conversation-thousand-stop-strings": conversation_abuse(
        {
            "messages": messages_array([{"role": "user", "content": "hi"}]),
            "stop": np.array([b"s%d" % i for i in range(1000)], dtype=object),
        }
    ),
    "conversation-nan-temperature": conversation_abuse(
        {"messages": messages_array([{"role": "user", "content": "hi"}]), "temperature": np.array([np.nan], np.float32)}
    ),
    "conversation-image-count-mismatch": conversation_abuse(
        {"messages": messages_array(IMAGE_TURN * 2), "image": np.array([encode(scene(seed=7))], dtype=object)},
        model="llava",
    ),
}


def assert_serves_clip_and_llava(server: TritonServer) -> None:
    serial = time.monotonic_ns()
    with VLMClient(server.grpc_url, timeout=60) as client:
        assert client.embed_texts([f"good text {serial}"]).shape[0] == 1
        assert client.embed_images([encode(scene(seed=serial % 1000))]).shape[0] == 1
        image = encode(scene(seed=1000 + serial % 1000))
        assert client.generate(IMAGE_TURN, [image], max_tokens=2).completion_tokens >= 1


@pytest.mark.parametrize("attack", list(HOSTILE), ids=list(HOSTILE))
def test_a_hostile_request_is_refused_and_the_server_serves_the_next_good_ones(
    server: TritonServer, attack: str
) -> None:
    status = HOSTILE[attack](server)
    assert status is None or 400 <= status < 600, f"{attack} was answered with {status}"
    assert_serves_clip_and_llava(server)
