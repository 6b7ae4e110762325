"""The served paths through ``vlm-gateway``: the same requests as the direct workloads, sent as an application
sends them (OpenAI-compatible JSON over keep-alive HTTP/1.1, one connection per load thread), and a gateway
process started for the run in front of the same Triton.

Requests use ``http.client`` from the standard library, the lightest client there is, so that on a small
machine the load generator takes as little CPU from the servers as the direct path's tritonclient does.
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

from benchmarks.workloads import ClipImage, ClipText, Llava, Sample, Workload, llava_messages
from client.errors import ServerBusyError
from gateway.process import GatewayProcess


class GatewayWorkload(Workload):
    """``url`` is the gateway's base URL (http://host:port)."""

    def connection(self) -> http.client.HTTPConnection:
        if not hasattr(self._local, "connection"):
            parts = urlsplit(self.url)
            self._local.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        return self._local.connection

    def post(self, path: str, body: dict[str, Any]) -> http.client.HTTPResponse:
        connection = self.connection()
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status == 429:  # refused for capacity: counted apart from the served requests, as direct
            raise ServerBusyError(f"{path}: HTTP 429: {response.read()[:300]!r}")
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}: {response.read()[:300]!r}")
        return response


def _image_items(images: list[bytes]) -> list[dict[str, Any]]:
    return [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(i).decode()}}
        for i in images
    ]


class GatewayClipImage(GatewayWorkload, ClipImage):
    def send(self, n: int, start: float | None = None) -> Sample:
        images = self.images(n)
        body = {"model": "clip", "input": _image_items(images), "encoding_format": "base64"}
        begin = time.perf_counter() if start is None else start
        self.post("/v1/embeddings", body).read()
        return Sample(begin, time.perf_counter(), images=len(images))


class GatewayClipText(GatewayWorkload, ClipText):
    def send(self, n: int, start: float | None = None) -> Sample:
        body = {"model": "clip", "input": self.texts(n), "encoding_format": "base64"}
        begin = time.perf_counter() if start is None else start
        self.post("/v1/embeddings", body).read()
        return Sample(begin, time.perf_counter())


class GatewayLlava(GatewayWorkload, Llava):
    def send(self, n: int, start: float | None = None) -> Sample:
        """A streamed chat completion; the first token is the first content delta (or the finish, for a reply
        whose only token is EOS), as for the direct path."""
        images = self.images(n)
        messages = llava_messages(self.texts(n)[0], len(images))
        content = [*_image_items(images), *messages[0]["content"][len(images) :]]
        body = {
            "model": "llava",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.payload.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        begin = time.perf_counter() if start is None else start
        first, usage = None, {"completion_tokens": 0, "prompt_tokens": 0}
        response = self.post("/v1/chat/completions", body)
        for line in response:
            if not line.startswith(b"data: "):
                continue
            if line.startswith(b"data: [DONE]"):
                break
            chunk = json.loads(line[6:])
            choice = chunk["choices"][0] if chunk["choices"] else {}
            if first is None and (choice.get("delta", {}).get("content") or choice.get("finish_reason")):
                first = time.perf_counter()
            if chunk.get("usage"):
                usage = chunk["usage"]
        response.read()
        return Sample(
            begin, time.perf_counter(), len(images), first, usage["completion_tokens"], usage["prompt_tokens"]
        )


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
