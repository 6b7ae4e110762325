"""What every request shares, made once at startup inside the event loop: the Triton client (one gRPC
channel), the image fetcher (one HTTP session), the services and the readiness probe."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from client import AsyncVLMClient
from gateway.embeddings import EmbeddingService
from gateway.errors import ApiError
from gateway.fetch import FetchPolicy, ImageFetcher
from gateway.images import ImageLoader
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from gateway.triton import ReadinessProbe, connect


@dataclass
class GatewayState:
    settings: GatewaySettings
    metrics: GatewayMetrics
    vlm: AsyncVLMClient
    fetcher: ImageFetcher
    images: ImageLoader
    embeddings: EmbeddingService
    readiness: ReadinessProbe

    @classmethod
    def open(cls, settings: GatewaySettings, metrics: GatewayMetrics) -> GatewayState:
        vlm = connect(settings, metrics)
        policy = FetchPolicy(
            allowed_hosts=frozenset(h.lower() for h in settings.allowed_image_hosts),
            allow_private=settings.allow_private_image_addresses,
            max_bytes=settings.max_image_bytes,
            timeout_s=settings.image_fetch_timeout_s,
        )
        fetcher = ImageFetcher(policy)
        images = ImageLoader(fetcher, settings.max_image_bytes)
        return cls(
            settings=settings,
            metrics=metrics,
            vlm=vlm,
            fetcher=fetcher,
            images=images,
            embeddings=EmbeddingService(vlm, images, settings),
            readiness=ReadinessProbe(vlm, settings.ready_cache_s),
        )

    async def close(self) -> None:
        await self.fetcher.close()
        await self.vlm.close()

    def check_model(self, model: str, expected: str) -> None:
        if model != expected:
            raise ApiError(
                404,
                f"the model {model!r} does not exist here (try {expected!r})",
                param="model",
                code="model_not_found",
            )


def gateway_state(request: Request) -> GatewayState:
    return request.app.state.gateway
