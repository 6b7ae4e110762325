"""Thin client for triton-vlm: tritonclient + numpy + pillow, no torch."""

from client.errors import InvalidInputError, ServerUnavailableError, VLMError
from client.vlm_client import VLMClient

__all__ = ["InvalidInputError", "ServerUnavailableError", "VLMClient", "VLMError"]
