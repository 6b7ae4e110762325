"""What every request shares, made once at startup inside the event loop: the Triton client (one gRPC
channel), the served models' catalog, the image fetcher (one HTTP session), the services and the readiness probe."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from client import AsyncVLMClient
from client.catalog import Kind, ServedModel
from gateway.catalog import ModelCatalog
from gateway.embeddings import EmbeddingService
from gateway.fetch import FetchPolicy, ImageFetcher
from gateway.images import ImageLoader
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from gateway.triton import ReadinessProbe, connect
from gateway.videos import VideoLoader


@dataclass
class GatewayState:
    settings: GatewaySettings
    metrics: GatewayMetrics
    vlm: AsyncVLMClient
    catalog: ModelCatalog
    fetcher: ImageFetcher
    images: ImageLoader
    videos: VideoLoader
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
        catalog = ModelCatalog(vlm, settings)
        return cls(
            settings=settings,
            metrics=metrics,
            vlm=vlm,
            catalog=catalog,
            fetcher=fetcher,
            images=images,
            videos=VideoLoader(fetcher, settings.max_video_bytes),
            embeddings=EmbeddingService(images, settings),
            readiness=ReadinessProbe(vlm, catalog, settings.ready_cache_s),
        )

    async def close(self) -> None:
        await self.fetcher.close()
        await self.vlm.close()

    async def route(self, name: str | None, kind: Kind, param: str = "model") -> tuple[ServedModel, AsyncVLMClient]:
        """The served model a request names (its kind's default for none) and the client calling its Triton models
        over the shared channel; 404 for an unknown name, 400 for one of the other kind (gateway/catalog.py)."""
        model = await self.catalog.resolve(name, kind, param)
        return model, self.vlm.using(model.model_names())


def gateway_state(request: Request) -> GatewayState:
    return request.app.state.gateway
