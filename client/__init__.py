"""Thin client for triton-vlm: tritonclient + numpy + pillow (+ tqdm), no torch."""

import importlib

from client.errors import (
    InvalidInputError,
    ModelNotReadyError,
    RequestTimeoutError,
    ServerBusyError,
    ServerUnavailableError,
    StreamInterruptedError,
    VLMError,
)
from client.generation import Completion
from client.models import ModelNames
from client.ranking import Ranked
from client.retry import RetryPolicy
from client.search import IndexMismatchError, SearchHit, SearchIndex

# The clients import tritonclient, so they load on first use: the pure modules (parameters, prompts, field_errors)
# that export/ and checkpoints/ import then work where tritonclient is not installed (the GPU check's machine).
_CLIENTS = {"AsyncVLMClient": "client.async_client", "VLMClient": "client.vlm_client"}


def __getattr__(name: str) -> object:
    if name in _CLIENTS:
        return getattr(importlib.import_module(_CLIENTS[name]), name)
    raise AttributeError(f"module 'client' has no attribute {name!r}")


__all__ = [
    "AsyncVLMClient",
    "Completion",
    "IndexMismatchError",
    "InvalidInputError",
    "ModelNames",
    "ModelNotReadyError",
    "Ranked",
    "RequestTimeoutError",
    "RetryPolicy",
    "SearchHit",
    "SearchIndex",
    "ServerBusyError",
    "ServerUnavailableError",
    "StreamInterruptedError",
    "VLMClient",
    "VLMError",
]
