"""The served models by name, as Triton says: what ``/v1/models`` lists and what a request's ``model`` routes to.

The gateway may not read the repository folder, and Triton's repository index needs the operator's key, so the
catalog comes from what every client may read: the statistics of every loaded model, and each model's config, whose
``vlm_*`` parameters name the checkpoint, its kind and the Triton model behind each task (client/catalog.py). It is
read again after ``catalog_cache_s``, and at most once a second when a request names a model it does not know (one
that was just loaded), so a client cannot make the gateway read Triton's configs on every request.

A request that names no model gets the kind's default: ``--chat-model`` / ``--embedding-model``, else the family's
default name (``llava``, ``clip``) when it is served, else the only model of that kind.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from client import AsyncVLMClient, VLMError
from client.catalog import KIND_WORDS, Kind, ServedModel
from client.models import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL
from gateway.errors import ApiError, from_vlm_error
from gateway.settings import GatewaySettings

UNKNOWN_REFRESH_S = 1.0  # a name the catalog lacks reads Triton again at most this often
# What each kind cannot do, for the 400 a request of the other kind gets.
CANNOT = {"chat": "it cannot chat", "embedding": "it makes no embeddings and does no zero-shot classification"}


@dataclass(frozen=True)
class Catalog:
    models: dict[str, ServedModel]
    read_at: float

    def of_kind(self, kind: Kind) -> list[str]:
        return [name for name, model in self.models.items() if model.kind == kind]


class ModelCatalog:
    def __init__(self, vlm: AsyncVLMClient, settings: GatewaySettings) -> None:
        self.vlm = vlm
        self.settings = settings
        self._lock = asyncio.Lock()
        self._catalog: Catalog | None = None

    async def get(self, stale_after_s: float | None = None) -> Catalog:
        """The catalog, read from Triton when older than ``stale_after_s`` (default ``catalog_cache_s``);
        ``ApiError`` 503/504 when Triton cannot be read."""
        limit = self.settings.catalog_cache_s if stale_after_s is None else stale_after_s
        async with self._lock:
            if self._catalog is None or time.monotonic() - self._catalog.read_at >= limit:
                try:
                    models = await self.vlm.served_models()
                except VLMError as error:
                    raise from_vlm_error(error, self.settings.retry_after_s) from None
                self._catalog = Catalog(models, time.monotonic())
            return self._catalog

    async def resolve(self, name: str | None, kind: Kind, param: str = "model") -> ServedModel:
        """The served model a request names (its kind's default when it names none): 404 for a name the server
        does not serve, 400 for a model of the other kind, each naming it and what is served instead."""
        catalog = await self.get()
        if name is None:
            return self._default(catalog, kind, param)
        if name not in catalog.models:
            catalog = await self.get(stale_after_s=UNKNOWN_REFRESH_S)
        model = catalog.models.get(name)
        if model is None:
            raise ApiError(
                404,
                f"the model {name!r} does not exist here; {_offer(catalog, kind)}",
                param=param,
                code="model_not_found",
            )
        if model.kind != kind:
            raise ApiError(
                400,
                f"{param}: {name!r} is {KIND_WORDS[model.kind]}: {CANNOT[kind]}; {_offer(catalog, kind)}",
                param=param,
                code="model_not_supported",
            )
        return model

    def _default(self, catalog: Catalog, kind: Kind, param: str) -> ServedModel:
        configured = self.settings.chat_model if kind == "chat" else self.settings.embedding_model
        family_default = DEFAULT_CHAT_MODEL if kind == "chat" else DEFAULT_EMBEDDING_MODEL
        names = catalog.of_kind(kind)
        if configured is not None:
            choice: str | None = configured
        elif family_default in names:
            choice = family_default
        else:
            choice = names[0] if len(names) == 1 else None
        if choice is None:
            message = f"{param}: required ({'several are' if names else 'none is'} served): {_offer(catalog, kind)}"
            raise ApiError(400, message, param=param, code="model_required")
        if choice not in names:
            message = f"{param}: required: the default, {choice!r}, is not served; {_offer(catalog, kind)}"
            raise ApiError(400, message, param=param, code="model_required")
        return catalog.models[choice]


def _offer(catalog: Catalog, kind: Kind) -> str:
    names = catalog.of_kind(kind)
    word = KIND_WORDS[kind].removeprefix("an ").removeprefix("a ")
    return f"the {word}s here: {', '.join(names)}" if names else f"no {word} is served here"
