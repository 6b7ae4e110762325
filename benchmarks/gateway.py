"""The served paths through ``vlm-gateway``: the same requests as the direct workloads, sent as an application
sends them (OpenAI-compatible JSON over keep-alive HTTP/1.1, one connection per load thread), and a gateway
process started for the run in front of the same Triton.

Closed-loop requests use ``http.client`` from the standard library, the lightest client there is, so that on a
small machine the load generator takes as little CPU from the servers as the direct path's tritonclient does;
the open loop's, aiohttp (which the async client already brings) on its event loop.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from benchmarks.workloads import ClipImage, ClipText, Llava, Payload, Sample, Workload
from client import RetryPolicy
from client.errors import ServerBusyError
from gateway.process import GatewayProcess


class GatewayWorkload(Workload):
    """``url`` is the base URL (http://host:port) of vlm-gateway or of any OpenAI-compatible server (``vllm serve``,
    see benchmarks/vllm_peer.py): ``model`` names the model there, ``extra_body`` adds fields to every request's
    JSON, and ``name`` labels the progress lines. A subclass says what request ``n`` is (``gateway_request``);
    sending and timing it, on a load thread or on the open loop's event loop, is here."""

    streams = False  # a streamed chat completion, timed to its first content delta

    def __init__(
        self,
        url: str,
        protocol: str,
        payload: Payload,
        retry: RetryPolicy | None = None,
        *,
        model: str | None = None,
        extra_body: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(url.rstrip("/"), protocol, payload, retry, model=model)
        self.extra_body = dict(extra_body or {})
        self.name = name or self.name

    def gateway_request(self, n: int) -> tuple[str, dict[str, Any], int]:
        """(path, JSON body, images in it) of request ``n``."""
        raise NotImplementedError

    def connection(self) -> http.client.HTTPConnection:
        if not hasattr(self._local, "connection"):
            parts = urlsplit(self.url)
            self._local.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        return self._local.connection

    def async_client(self) -> aiohttp.ClientSession:
        """The open loop's keep-alive pool: a connection per request in flight (HTTP/1.1), never a proxy."""
        return aiohttp.ClientSession(
            self.url, connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600)
        )

    def send(self, n: int) -> Sample:
        path, body, images = self.gateway_request(n)
        begin, connection = time.perf_counter(), self.connection()
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        _check(path, response.status, response.read() if response.status != 200 else b"")
        if not self.streams:
            response.read()
            return Sample(begin, time.perf_counter(), images=images)
        chat = _ChatStream(begin, images)
        for line in response:
            if chat.arrived(line):
                break
        response.read()
        return chat.sample()

    async def send_async(self, session: aiohttp.ClientSession, n: int, start: float) -> Sample:
        path, body, images = self.gateway_request(n)
        async with session.post(path, json=body) as response:
            _check(path, response.status, await response.read() if response.status != 200 else b"")
            if not self.streams:
                await response.read()
                return Sample(start, time.perf_counter(), images=images)
            chat = _ChatStream(start, images)
            async for line in response.content:
                if chat.arrived(line):
                    break
            return chat.sample()


def _check(path: str, status: int, error_body: bytes) -> None:
    if status == 429:  # refused for capacity: counted apart from the served requests, as direct
        raise ServerBusyError(f"{path}: HTTP 429: {error_body[:300]!r}")
    if status != 200:
        raise RuntimeError(f"{path}: HTTP {status}: {error_body[:300]!r}")


class _ChatStream:
    """Reads a streamed chat completion's server-sent events: the first token is the first content delta (or
    the finish, for a reply whose only token is EOS), as for the direct path; the usage chunk gives the counts."""

    def __init__(self, start: float, images: int) -> None:
        self.start, self.images = start, images
        self.first: float | None = None
        self.usage = {"completion_tokens": 0, "prompt_tokens": 0}

    def arrived(self, line: bytes) -> bool:
        """Takes one line; True at the end of the stream."""
        if not line.startswith(b"data: "):
            return False
        if line.startswith(b"data: [DONE]"):
            return True
        chunk = json.loads(line[6:])
        choice = chunk["choices"][0] if chunk["choices"] else {}
        if self.first is None and (choice.get("delta", {}).get("content") or choice.get("finish_reason")):
            self.first = time.perf_counter()
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        return False

    def sample(self) -> Sample:
        tokens, prompt = self.usage["completion_tokens"], self.usage["prompt_tokens"]
        return Sample(self.start, time.perf_counter(), self.images, self.first, tokens, prompt)


def _image_items(images: list[bytes]) -> list[dict[str, Any]]:
    return [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(i).decode()}}
        for i in images
    ]


class GatewayClipImage(GatewayWorkload, ClipImage):
    def gateway_request(self, n: int) -> tuple[str, dict[str, Any], int]:
        images = self.images(n)
        body = {"model": self.model, "input": _image_items(images), "encoding_format": "base64", **self.extra_body}
        return "/v1/embeddings", body, len(images)


class GatewayClipText(GatewayWorkload, ClipText):
    def gateway_request(self, n: int) -> tuple[str, dict[str, Any], int]:
        body = {"model": self.model, "input": self.texts(n), "encoding_format": "base64", **self.extra_body}
        return "/v1/embeddings", body, 0


def _video_items(videos: list[bytes]) -> list[dict[str, Any]]:
    return [
        {"type": "video_url", "video_url": {"url": "data:video/mp4;base64," + base64.b64encode(v).decode()}}
        for v in videos
    ]


class GatewayLlava(GatewayWorkload, Llava):
    """Request ``n`` as a streamed chat completion: its videos and images as data URLs in ``video_url`` and
    ``image_url`` parts, then the question; greedy and exactly ``max_tokens`` tokens (``Payload.sampling``:
    ``ignore_eos`` and ``min_tokens`` are vLLM's extra fields, which vlm-gateway takes too)."""

    streams = True

    def gateway_request(self, n: int) -> tuple[str, dict[str, Any], int]:
        messages, images = self.request(n)
        videos = self.videos(n)
        media = [*_video_items(videos), *_image_items(images)]
        content = [*media, *messages[0]["content"][len(media) :]]
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            **self.payload.sampling(),
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.extra_body,
        }
        return "/v1/chat/completions", body, len(images)

    def usage(self, n: int) -> dict[str, int]:
        """The ``usage`` the server reports for request ``n`` cut to one token (not streamed): how it counted the
        prompt, to compare servers on the same request."""
        path, body, _ = self.gateway_request(n)
        body = {**body, "max_tokens": 1, "min_tokens": 1, "stream": False}
        del body["stream_options"]
        connection = self.connection()
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        text = response.read()
        _check(path, response.status, text)
        return json.loads(text)["usage"]


GATEWAY_WORKLOADS: dict[str, type[Workload]] = {w.name: w for w in (GatewayClipImage, GatewayClipText, GatewayLlava)}


class GatewayCost:
    """The gateway process's CPU time per request it answered: a figure that other load on the machine does not
    move the way it moves throughput and latency."""

    def __init__(self, url: str, pid: int | None) -> None:
        import psutil

        self.url = url
        self.process = psutil.Process(pid) if pid else None
        self.direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def snapshot(self) -> tuple[float, int] | None:
        if self.process is None:
            return None
        times = self.process.cpu_times()
        with self.direct.open(f"{self.url}/metrics", timeout=30) as response:
            text = response.read().decode()
        answered = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("vlm_gateway_requests_total{") and 'method="POST"' in line
        )
        return times.user + times.system, int(answered)

    @staticmethod
    def per_request_ms(before: tuple[float, int] | None, after: tuple[float, int] | None) -> float | None:
        if before is None or after is None or after[1] == before[1]:
            return None
        return (after[0] - before[0]) * 1000 / (after[1] - before[1])


@contextlib.contextmanager
def serve_gateway(triton_grpc_url: str, log_file: Path) -> Iterator[tuple[str, int]]:
    """``vlm-gateway`` on a free loopback port for the run, with limits far above the load; yields its URL and
    process id. It is awaited on /health, not /ready: a benchmark loads only the models of its path, and /ready
    asks for them all."""
    limits = ("--log-level", "warning", "--max-concurrency", "4096", "--max-concurrency-per-key", "4096")
    with GatewayProcess(triton_grpc_url, log_file, *limits, timeout_s=120) as gateway:
        assert gateway.process is not None
        yield gateway.url, gateway.process.pid
