"""One served task per benchmark and how one request of it is sent and timed, to the model named ``model`` (default:
the task's historical model, ``clip`` or ``llava``; any served model of the task's kind, found by its tags).

Requests go through ``VLMClient`` (one client per load thread), the way an application calls the server. Each
benchmark has a task name (``image-embed``, ``text-embed``, ``rank``, ``chat``) and its first name
(``clip-image``, ``clip-text``, ``clip-rank``, ``llava``), which reports and results folders keep.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.inputs import unique
from client import AsyncVLMClient, Completion, RetryPolicy, VLMClient
from client.catalog import KIND_OF_TASK, Task
from client.models import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL


@dataclass(frozen=True)
class Sample:
    """One completed request; times are ``time.perf_counter()`` seconds."""

    start: float
    end: float
    images: int = 0
    first_token: float | None = None  # when the first text arrived (generation only)
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    refused: bool = False  # the server turned it away as busy (admission control)
    sent: float | None = None  # open loop: when it left the load generator (its arrival is ``start``)

    @property
    def latency_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Payload:
    """The inputs every request of a run draws from, in turn; baselines use the same ones."""

    images: tuple[bytes, ...] = ()
    texts: tuple[str, ...] = ()
    images_per_request: int = 1
    texts_per_request: int = 1
    max_tokens: int = 64
    videos: tuple[bytes, ...] = ()  # clips (container bytes); each chat request carries ``videos_per_request``
    videos_per_request: int = 0

    def sampling(self) -> dict[str, Any]:
        """Every LLaVA request's options, on every path: greedy, and exactly ``max_tokens`` tokens (``ignore_eos`` and
        ``min_tokens``, as genai-perf fixes output lengths), so each side does the same work per request."""
        return {"max_tokens": self.max_tokens, "min_tokens": self.max_tokens, "ignore_eos": True, "temperature": 0.0}


class Workload:
    """Sends request ``n`` of a run to the model ``model``; subclasses name the task and what one request is."""

    name = ""
    task: Task = "image_embed"
    default_model = DEFAULT_EMBEDDING_MODEL
    counts_images = False
    generates = False

    def __init__(
        self,
        url: str,
        protocol: str,
        payload: Payload,
        retry: RetryPolicy | None = None,
        *,
        model: str | None = None,
    ) -> None:
        self.url, self.protocol, self.payload = url, protocol, payload
        self.retry = retry  # None: the client's default (transient failures, busy included, are retried)
        self.model = model or self.default_model
        self._serial = itertools.count()
        self._requests = itertools.count()
        self._local = threading.local()

    def next_request(self) -> int:
        """Run-wide request numbers: a later load point moves on to inputs the earlier ones have not sent (the
        LLaVA encoders cache by pixel values, which the serial in the bytes does not change)."""
        return next(self._requests)

    def share_requests(self, other: Workload) -> Workload:
        """Number requests on from ``other``'s count (one count per server: the direct path and the gateway
        workloads on one Triton never send it the same inputs); returns self."""
        self._requests = other._requests
        return self

    def client(self) -> VLMClient:
        """One client per thread: tritonclient's clients are not shared across threads."""
        if not hasattr(self._local, "client"):
            self._local.client = VLMClient(
                self.url, protocol=self.protocol, timeout=600.0, retry=self.retry, **self.model_names()
            )
        return self._local.client

    def model_names(self) -> dict[str, str]:
        """The client's keyword naming this workload's model: its task's kind says which."""
        return {"embedding_model" if KIND_OF_TASK[self.task] == "embedding" else "chat_model": self.model}

    def async_client(self) -> Any:
        """The open loop's client, an async context manager (here one AsyncVLMClient, its requests multiplexed
        on one connection), passed to every ``send_async``."""
        return AsyncVLMClient(self.url, protocol=self.protocol, timeout=600.0, retry=self.retry, **self.model_names())

    def images(self, n: int) -> list[bytes]:
        pool, count = self.payload.images, self.payload.images_per_request
        return [unique(pool[(n * count + i) % len(pool)], next(self._serial)) for i in range(count)]

    def texts(self, n: int) -> list[str]:
        pool, count = self.payload.texts, self.payload.texts_per_request
        return [pool[(n * count + i) % len(pool)] for i in range(count)]

    def videos(self, n: int) -> list[bytes]:
        pool, count = self.payload.videos, self.payload.videos_per_request
        return [pool[(n * count + i) % len(pool)] for i in range(count if pool else 0)]

    def send(self, n: int) -> Sample:
        """Send request ``n`` and time it (the closed loop's load threads)."""
        raise NotImplementedError

    async def send_async(self, client: Any, n: int, start: float) -> Sample:
        """The same request on the open loop's event loop; latency counts from the arrival time ``start``."""
        raise NotImplementedError


def _timed(call: Callable[[], Any], images: int) -> Sample:
    begin = time.perf_counter()
    call()
    return Sample(begin, time.perf_counter(), images=images)


async def _timed_async(call: Awaitable[Any], images: int, start: float) -> Sample:
    await call
    return Sample(start, time.perf_counter(), images=images)


class ClipImage(Workload):
    name, task, counts_images = "clip-image", "image_embed", True

    def send(self, n: int) -> Sample:
        images = self.images(n)
        return _timed(lambda: self.client().embed_images(images), len(images))

    async def send_async(self, vlm: AsyncVLMClient, n: int, start: float) -> Sample:
        images = self.images(n)
        return await _timed_async(vlm.embed_images(images), len(images), start)


class ClipText(Workload):
    name, task = "clip-text", "text_embed"

    def texts(self, n: int) -> list[str]:
        # A serial keeps the response cache from answering a repeated text; it adds a token or two.
        return [f"{text} {next(self._serial)}" for text in super().texts(n)]

    def send(self, n: int) -> Sample:
        texts = self.texts(n)
        return _timed(lambda: self.client().embed_texts(texts), 0)

    async def send_async(self, vlm: AsyncVLMClient, n: int, start: float) -> Sample:
        return await _timed_async(vlm.embed_texts(self.texts(n)), 0, start)


class ClipRank(Workload):
    name, task, counts_images = "clip-rank", "rank", True

    def send(self, n: int) -> Sample:
        images, texts = self.images(n), self.texts(n)
        return _timed(lambda: self.client().rank_texts(images, texts), len(images))

    async def send_async(self, vlm: AsyncVLMClient, n: int, start: float) -> Sample:
        images = self.images(n)
        return await _timed_async(vlm.rank_texts(images, self.texts(n)), len(images), start)


def llava_messages(question: str, images: int, videos: int = 0) -> list[dict[str, Any]]:
    """One user turn: its videos, then its images, then the question."""
    media = [*({"type": "video"} for _ in range(videos)), *({"type": "image"} for _ in range(images))]
    return [{"role": "user", "content": [*media, {"type": "text", "text": question}]}]


class Llava(Workload):
    name, task, generates = "llava", "chat", True
    default_model = DEFAULT_CHAT_MODEL

    def request(self, n: int) -> tuple[list[dict[str, Any]], list[bytes]]:
        images, videos = self.images(n), self.videos(n)
        return llava_messages(self.texts(n)[0], len(images), len(videos)), images

    def media(self, n: int) -> dict[str, Any]:
        """Request ``n``'s videos as the client's keyword (none: nothing, so a server without video is not asked)."""
        videos = self.videos(n)
        return {"videos": videos} if videos else {}

    def send(self, n: int) -> Sample:
        messages, images = self.request(n)
        timer = _StreamTimer(time.perf_counter(), len(images))
        for item in self.client().generate_stream(messages, images, **self.media(n), **self.payload.sampling()):
            if (sample := timer.arrived(item)) is not None:
                return sample
        raise RuntimeError("the stream ended without a final response")

    async def send_async(self, vlm: AsyncVLMClient, n: int, start: float) -> Sample:
        messages, images = self.request(n)
        timer = _StreamTimer(start, len(images))
        async for item in vlm.generate_stream(messages, images, **self.media(n), **self.payload.sampling()):
            if (sample := timer.arrived(item)) is not None:
                return sample
        raise RuntimeError("the stream ended without a final response")


class _StreamTimer:
    """Times one generation stream: its first text and its final response."""

    def __init__(self, start: float, images: int) -> None:
        self.start, self.images = start, images
        self.first: float | None = None

    def arrived(self, item: str | Completion) -> Sample | None:
        now = time.perf_counter()
        self.first = self.first or now  # a completion whose only token is EOS has no text: its end is its first
        if not isinstance(item, Completion):
            return None
        return Sample(self.start, now, self.images, self.first, item.completion_tokens, item.prompt_tokens)


WORKLOADS: dict[str, type[Workload]] = {w.name: w for w in (ClipImage, ClipText, ClipRank, Llava)}
# Each benchmark by its task (what it measures of any model that does it): image-embed, text-embed, rank, chat.
TASK_BENCHMARKS: dict[str, str] = {w.task.replace("_", "-"): name for name, w in WORKLOADS.items()}


def benchmark_name(name: str) -> str:
    """The benchmark's first name (``clip-image``) for either of its names; ``ValueError`` listing both kinds."""
    if name in WORKLOADS:
        return name
    if name in TASK_BENCHMARKS:
        return TASK_BENCHMARKS[name]
    raise ValueError(f"benchmark: choose one of {', '.join([*TASK_BENCHMARKS, *WORKLOADS])}, got {name!r}")
