"""Typed client errors, mapped from tritonclient's single exception type."""

from __future__ import annotations

from tritonclient.utils import InferenceServerException


class VLMError(RuntimeError):
    """Base of every error the client raises."""


class InvalidInputError(VLMError):
    """The server rejected the request's content (HTTP 400 / gRPC INVALID_ARGUMENT)."""


class ServerUnavailableError(VLMError):
    """No server answered, or it is not ready."""


_INVALID = {"400", "StatusCode.INVALID_ARGUMENT"}
_UNAVAILABLE = {"StatusCode.UNAVAILABLE", "503", "502"}


def translate(error: InferenceServerException) -> VLMError:
    status = str(error.status() or "")
    message = error.message() or str(error)
    if status in _INVALID:
        return InvalidInputError(message)
    if status in _UNAVAILABLE or "connection refused" in message.lower() or "failed to connect" in message.lower():
        return ServerUnavailableError(message)
    return VLMError(message)
