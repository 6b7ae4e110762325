"""The gateway's one connection to Triton, and the readiness probe behind ``/ready``.

Every request shares one ``AsyncVLMClient``, so one gRPC channel (HTTP/2 multiplexes the requests over it).
``--triton-url`` is read here and nowhere else.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from PIL import Image

from client import (
    AsyncVLMClient,
    ModelNotReadyError,
    RetryPolicy,
    ServerBusyError,
    ServerUnavailableError,
    VLMError,
    prompts,
)
from client.catalog import ServedModel
from gateway.errors import ApiError
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from gateway.catalog import ModelCatalog


def replica_failed(error: VLMError) -> bool:
    """The replica that took the request died or is not ready: worth one more try, which the channel's
    round_robin sends to the next replica. A busy refusal goes back to the caller at once (429 with
    Retry-After): HTTP clients, the OpenAI SDK among them, back off and retry those themselves."""
    return isinstance(error, ServerUnavailableError | ModelNotReadyError) and not isinstance(error, ServerBusyError)


REPLICA_ATTEMPTS = 2  # once more, right away, on another replica: streams only while nothing was streamed yet


def replica_retry(metrics: GatewayMetrics) -> RetryPolicy:
    def count_retry(attempt: int, error: VLMError) -> None:
        if attempt < REPLICA_ATTEMPTS and replica_failed(error):
            metrics.replica_retries.inc()

    return RetryPolicy(
        attempts=REPLICA_ATTEMPTS, backoff_s=0.0, max_backoff_s=0.0, retry_on=replica_failed, on_failure=count_retry
    )


def connect(settings: GatewaySettings, metrics: GatewayMetrics) -> AsyncVLMClient:
    """``--triton-url`` is a gRPC target: ``host:port``, ``dns:///name:port`` or ``ipv4:a:p,b:p`` (every address
    in one round-robin channel, see client/channel.py)."""
    retry = replica_retry(metrics)
    return AsyncVLMClient(settings.triton_url, protocol="grpc", timeout=settings.triton_timeout_s, retry=retry)


def _probe_image(serial: int) -> bytes:
    """A tiny image no earlier probe sent, so Triton's response cache cannot answer in the model's place."""
    image = Image.new("RGB", (8, 8), (serial % 256, (serial // 256) % 256, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class ReadinessProbe:
    """Triton is ready, it serves at least one model, every served model reports ready, and each one's
    python-backend models answer a request: a dual encoder's text and image embedding ensembles, a VLM's one-token
    generation. (Triton 2.51 keeps reporting a model ready after its python stub died.) A busy answer counts as
    alive. Results are reused for ``cache_s`` seconds."""

    def __init__(self, client: AsyncVLMClient, catalog: ModelCatalog, cache_s: float) -> None:
        self.client = client
        self.catalog = catalog
        self.cache_s = cache_s
        self._serial = itertools.count(int(time.time()))
        self._lock = asyncio.Lock()
        self._checked_at = -float("inf")
        self._checks: dict[str, str] = {}

    async def check(self) -> dict[str, str]:
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.cache_s:
                self._checks = await self._probe()
                self._checked_at = time.monotonic()
            return self._checks

    async def _probe(self) -> dict[str, str]:
        try:
            served = (await self.catalog.get(stale_after_s=self.cache_s)).models
        except ApiError as error:
            return {"triton": f"not ready ({error.message})"}
        if not served:
            return {"triton": "not ready (it serves no model tagged for clients: run vlm-export repository)"}
        entry = [name for model in served.values() for name in model.entry_models]
        if not await self.client.is_ready(entry):
            return {"triton": "not ready (the server or one of its models)"}
        serial = next(self._serial)
        probes: dict[str, Awaitable[Any]] = {}
        for model in served.values():
            probes.update(self._requests(model, serial))
        outcomes = await asyncio.gather(*probes.values(), return_exceptions=True)
        checks = {"triton": "ok"}
        for name, outcome in zip(probes, outcomes, strict=True):
            if isinstance(outcome, ServerBusyError) or not isinstance(outcome, BaseException):
                checks[name] = "ok"
            elif isinstance(outcome, VLMError):
                checks[name] = f"failed: {type(outcome).__name__}"
            else:
                raise outcome
        return checks

    def _requests(self, model: ServedModel, serial: int) -> dict[str, Awaitable[Any]]:
        """Triton model -> the request that shows it answers."""
        vlm = self.client.using(model.model_names())
        if model.kind == "chat":
            return {vlm.models.decoder: vlm.generate(prompts.user_turn("ready?", images=0), max_tokens=1)}
        return {
            vlm.models.text_embed: vlm.embed_texts([f"readiness probe {uuid.uuid4().hex}"]),
            vlm.models.image_embed: vlm.embed_images([_probe_image(serial)]),
        }


def is_ready(checks: dict[str, str]) -> bool:
    return all(outcome == "ok" for outcome in checks.values())
