"""Thin client for triton-vlm: tritonclient + numpy + pillow (+ tqdm), no torch."""

from client.async_client import AsyncVLMClient
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
from client.vlm_client import VLMClient

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
