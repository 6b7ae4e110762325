"""Typed client errors, mapped from tritonclient's single exception type and from socket errors."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from client.field_errors import FieldRef, decode

if TYPE_CHECKING:  # a type only: the pure modules that import this one run without tritonclient
    from tritonclient.utils import InferenceServerException


# Triton's own refusal of an input the model does not declare (e.g. min_pixels for a model without a pixel budget).
_UNDECLARED_INPUT = re.compile(
    r"unexpected inference input '(?P<field>[A-Za-z_][A-Za-z0-9_]*)' for model '(?P<model>[^']+)'"
)


class VLMError(RuntimeError):
    """Base of every error the client raises."""


class InvalidInputError(VLMError):
    """The request's content is wrong: the server rejected it (HTTP 400 / gRPC INVALID_ARGUMENT) or the
    client's own checks did. Never retried.

    When the server named the offending input, ``field`` is its name (``"image"``), ``index`` the element
    (``1`` for the second image, else None), ``member`` where inside it (``".content[1].text"``), and ``reason``
    the rest of the message; they arrive as data (``client.field_errors``), and ``str()`` reads
    ``image[1]: <reason>``. Otherwise ``field`` is None and ``reason`` is the whole message."""

    def __init__(self, message: str, location: FieldRef | None = None) -> None:
        self.location = location
        self.reason = message
        if location is not None:
            message = f"{location}: {message}"
        super().__init__(message)

    @property
    def field(self) -> str | None:
        return None if self.location is None else self.location.name

    @property
    def index(self) -> int | None:
        return None if self.location is None else self.location.index

    @property
    def member(self) -> str:
        return "" if self.location is None else self.location.member

    @classmethod
    def from_server(cls, message: str) -> InvalidInputError | None:
        """The rejection a server message carries with its field (``client.field_errors``), or Triton's own refusal of
        an input the model does not declare; None for other messages."""
        decoded = decode(message)
        if decoded is not None:
            return cls(decoded[1], decoded[0])
        if (undeclared := _UNDECLARED_INPUT.search(message)) is not None:
            return cls(f"the model {undeclared['model']!r} takes no such input", FieldRef(undeclared["field"]))
        return None


class ModelNotReadyError(VLMError):
    """The server answers but does not serve the model (not loaded, unknown, or still loading)."""


class ServerUnavailableError(VLMError):
    """No server answered (connection refused, unreachable) or it is shutting down. Retried."""


class ServerBusyError(ServerUnavailableError):
    """The server is up but refused the request for lack of capacity (a full queue). Retried."""


class RequestTimeoutError(VLMError):
    """No answer within the client's timeout."""


class StreamInterruptedError(VLMError):
    """A generation failed after it had started; ``partial_text`` holds the text received until then."""

    def __init__(self, message: str, partial_text: str) -> None:
        super().__init__(message)
        self.partial_text = partial_text


TRANSIENT = (ServerUnavailableError,)  # busy is a kind of unavailable: both are worth another attempt

_INVALID = {"400", "StatusCode.INVALID_ARGUMENT"}
_NOT_FOUND = {"404", "StatusCode.NOT_FOUND"}
_BUSY = {"429", "StatusCode.RESOURCE_EXHAUSTED"}
_UNAVAILABLE = {"502", "503", "StatusCode.UNAVAILABLE"}
_TIMEOUT = {"504", "StatusCode.DEADLINE_EXCEEDED"}
_CONNECTION_FAILED = ("connection refused", "failed to connect", "connection reset", "broken pipe")
# Triton's queue policy ("Exceeds maximum queue size", "Request timeout expired") and the decoder's waiting bound
# ("llava_decoder: busy: ...") refuse with UNAVAILABLE, or with no code at all inside a stream.
_BUSY_MESSAGES = ("exceeds maximum queue size", "request timeout expired", ": busy: ")
_NOT_READY = ("unknown model", "is not ready", "no available versions", "not found")


# Triton's own refusal of an input the model does not declare (e.g. min_pixels for a model without a pixel budget).
_UNDECLARED_INPUT = re.compile(
    r"unexpected inference input '(?P<field>[A-Za-z_][A-Za-z0-9_]*)' for model '(?P<model>[^']+)'"
)


def from_status(status: str, message: str) -> VLMError:
    """The error for a gRPC status (``StatusCode.X``) or an HTTP status code (empty inside a stream, where
    Triton sends none), and the server's message. A rejection that names its field is invalid input whatever the
    status: it is the one place the field is read back (``client.field_errors``)."""
    if (rejection := InvalidInputError.from_server(message)) is not None:
        return rejection
    lowered = message.lower()
    if status in _BUSY or is_busy_message(message):  # Triton's HTTP generate_stream answers a refusal with 400
        return ServerBusyError(message)
    if "server is stopping" in lowered:  # a draining server refuses new requests; another replica may not
        return ServerUnavailableError(message)
    if status in _INVALID:
        return InvalidInputError(message)
    if status in _TIMEOUT or "deadline exceeded" in lowered:
        return RequestTimeoutError(message)
    if status in _NOT_FOUND or (status in _UNAVAILABLE and any(s in lowered for s in _NOT_READY)):
        return ModelNotReadyError(message)
    if status in _UNAVAILABLE or any(s in lowered for s in _CONNECTION_FAILED):
        return ServerUnavailableError(message)
    return VLMError(message)


def is_busy_message(message: str) -> bool:
    lowered = message.lower()
    return any(phrase in lowered for phrase in _BUSY_MESSAGES)


def translate(error: InferenceServerException) -> VLMError:
    return from_status(str(error.status() or ""), error.message() or str(error))


def from_os_error(url: str, error: OSError) -> VLMError:
    """The HTTP clients raise socket errors as they are (urllib wraps them in ``URLError.reason``)."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, OSError):
        error = reason
    if isinstance(error, TimeoutError):
        return RequestTimeoutError(f"{url}: no answer within the timeout")
    return ServerUnavailableError(f"{url}: {error.strerror or reason or error}")
