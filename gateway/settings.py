"""What an operator sets: where Triton is, the default models, API keys, and every limit on a request."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from client.catalog import check_model_name
from client.video_parameters import MAX_VIDEO_BYTES

API_KEYS_VARIABLE = "VLM_GATEWAY_API_KEYS"
MIB = 1024 * 1024


@dataclass(frozen=True)
class GatewaySettings:
    triton_url: str = "127.0.0.1:8001"  # Triton's gRPC endpoint (see gateway.triton)
    # The served model a request that names none gets (gateway/catalog.py); None: the family's default name (llava,
    # clip) when served, else the only model of that kind. The public ids are the exported names (/v1/models).
    chat_model: str | None = None
    embedding_model: str | None = None
    catalog_cache_s: float = 10.0  # Triton's served models are read again after this
    api_keys: frozenset[str] = frozenset()  # empty: no authentication
    max_body_bytes: int = 32 * MIB  # after inflating a gzip body
    max_json_depth: int = 32  # an OpenAI request nests 6 deep
    max_images: int = 4  # per request, on every route (llava-1.5's decoder takes 4)
    max_image_bytes: int = 16 * MIB  # one encoded image, from a data URL, an upload or a fetch
    max_video_bytes: int = MAX_VIDEO_BYTES  # one encoded video, from a data URL or a fetch (Triton's own limit)
    max_embedding_inputs: int = 64  # texts and images in one embeddings request
    max_choices: int = 4  # ``n``
    max_concurrency: int = 64  # requests in flight on the inference routes, in all
    max_concurrency_per_key: int = 16  # ... per API key (per client address without keys)
    retry_after_s: int = 1  # what a 429 or 503 tells the client to wait
    body_timeout_s: float = 60.0  # a request body must arrive within this
    triton_timeout_s: float = 120.0  # each answer from Triton (each streamed piece of a generation)
    allowed_image_hosts: frozenset[str] = frozenset()  # http(s) image URLs only from these hosts
    allow_private_image_addresses: bool = False  # internal deployments and tests: fetch from private addresses
    image_fetch_timeout_s: float = 10.0
    ready_cache_s: float = 2.0  # /ready probes the models at most this often

    def __post_init__(self) -> None:
        positive = {
            "max_body_bytes": self.max_body_bytes,
            "max_json_depth": self.max_json_depth,
            "max_images": self.max_images,
            "max_image_bytes": self.max_image_bytes,
            "max_video_bytes": self.max_video_bytes,
            "max_embedding_inputs": self.max_embedding_inputs,
            "max_choices": self.max_choices,
            "max_concurrency": self.max_concurrency,
            "max_concurrency_per_key": self.max_concurrency_per_key,
            "retry_after_s": self.retry_after_s,
            "body_timeout_s": self.body_timeout_s,
            "triton_timeout_s": self.triton_timeout_s,
            "image_fetch_timeout_s": self.image_fetch_timeout_s,
            "catalog_cache_s": self.catalog_cache_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.ready_cache_s < 0:
            raise ValueError(f"ready_cache_s must not be negative, got {self.ready_cache_s}")
        for model in (self.chat_model, self.embedding_model):
            if model is not None:
                check_model_name(model)
        if self.chat_model is not None and self.chat_model == self.embedding_model:
            raise ValueError("the default chat and embedding models must be two different models")
        if any(not key or any(c.isspace() for c in key) for key in self.api_keys):
            raise ValueError("API keys must be non-empty and hold no spaces")

    @property
    def auth_required(self) -> bool:
        return bool(self.api_keys)


def load_api_keys(key_file: Path | None, environ: dict[str, str] | None = None) -> frozenset[str]:
    """Keys from ``$VLM_GATEWAY_API_KEYS`` (comma-separated) and from a file (one per line, ``#`` comments)."""
    environ = os.environ if environ is None else environ
    keys = {key.strip() for key in environ.get(API_KEYS_VARIABLE, "").split(",") if key.strip()}
    if key_file is not None:
        for line in key_file.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                keys.add(line)
    return frozenset(keys)
