"""Thin client for triton-vlm: tritonclient + numpy + pillow, no torch."""

from client.errors import InvalidInputError, ServerUnavailableError, VLMError
from client.generation import Completion
from client.vlm_client import VLMClient

__all__ = ["Completion", "InvalidInputError", "ServerUnavailableError", "VLMClient", "VLMError"]
