"""How the client names failures: each gRPC status and HTTP code, and socket errors, as its typed errors."""

from __future__ import annotations

import pytest
from tritonclient.utils import InferenceServerException

from client.errors import (
    InvalidInputError,
    ModelNotReadyError,
    RequestTimeoutError,
    ServerBusyError,
    ServerUnavailableError,
    VLMError,
    from_os_error,
    from_status,
    translate,
)


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        ("StatusCode.INVALID_ARGUMENT", "image[0]: not a decodable image", InvalidInputError),
        ("400", "text[0]: must not be empty", InvalidInputError),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'x' is not found", ModelNotReadyError),
        ("404", "Request for unknown model: 'x' is not found", ModelNotReadyError),
        ("StatusCode.UNAVAILABLE", "Request for unknown model: 'x' has no available versions", ModelNotReadyError),
        ("StatusCode.UNAVAILABLE", "Exceeds maximum queue size", ServerBusyError),
        ("503", "Exceeds maximum queue size", ServerBusyError),
        ("StatusCode.UNAVAILABLE", "in ensemble 'clip_rank', Request timeout expired", ServerBusyError),
        ("StatusCode.UNAVAILABLE", "llava_decoder: busy: 16 requests already wait for a free slot", ServerBusyError),
        ("400", "llava_decoder: busy: 16 requests already wait for a free slot", ServerBusyError),
        ("StatusCode.RESOURCE_EXHAUSTED", "too many requests", ServerBusyError),
        ("429", "too many requests", ServerBusyError),
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses; Connection refused", ServerUnavailableError),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", RequestTimeoutError),
        ("StatusCode.INTERNAL", "llava_decoder: internal error", VLMError),
    ],
)
def test_each_status_becomes_its_typed_error(status: str, message: str, kind: type[VLMError]) -> None:
    error = translate(InferenceServerException(message, status=status))
    assert type(error) is kind and str(error) == message


def test_busy_counts_as_unavailable_so_both_are_retried() -> None:
    assert issubclass(ServerBusyError, ServerUnavailableError)


def test_socket_errors_are_unavailable_or_timeouts() -> None:
    assert isinstance(from_os_error("h:1", ConnectionRefusedError(111, "Connection refused")), ServerUnavailableError)
    assert isinstance(from_os_error("h:1", TimeoutError("timed out")), RequestTimeoutError)
    assert "Connection refused" in str(from_os_error("h:1", ConnectionRefusedError(111, "Connection refused")))


@pytest.mark.parametrize("status", ["StatusCode.INVALID_ARGUMENT", "400", ""])
def test_an_input_the_model_does_not_declare_is_invalid_input_naming_it(status: str) -> None:
    message = "[request id: <id_unknown>] unexpected inference input 'min_pixels' for model 'llava'"
    error = from_status(status, message)
    assert isinstance(error, InvalidInputError) and error.field == "min_pixels"
    assert str(error) == "min_pixels: the model 'llava' takes no such input"
