"""gateway.errors: the client's typed errors as statuses, and Triton's field (data on the client's
InvalidInputError, never parsed from its text) as the request's parameter."""

from __future__ import annotations

import pytest

from client.errors import (
    InvalidInputError,
    ModelNotReadyError,
    RequestTimeoutError,
    ServerBusyError,
    ServerUnavailableError,
    StreamInterruptedError,
    VLMError,
    from_status,
)
from client.field_errors import FieldRef, encode
from gateway.errors import ApiError, from_vlm_error


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (InvalidInputError("max_tokens: must be at least 1"), 400, False),
        (ServerBusyError("queue is full"), 429, True),
        (ModelNotReadyError("unknown model"), 503, True),
        (ServerUnavailableError("10.0.0.7:8001: connection refused"), 503, True),
        (RequestTimeoutError("no answer"), 504, False),
        (StreamInterruptedError("broke", "partial"), 502, False),
        (VLMError("llava_decoder: internal error"), 502, False),
    ],
)
def test_each_client_error_gets_its_status(error: VLMError, status: int, retry_after: bool) -> None:
    mapped = from_vlm_error(error, 2, None)
    assert mapped.status == status
    assert ("Retry-After" in mapped.headers) == retry_after
    if status >= 500:
        assert "10.0.0.7" not in mapped.message and "internal error" not in mapped.message


def test_a_triton_field_becomes_the_parameter_it_came_from() -> None:
    wire = "in ensemble 'llava', " + encode(FieldRef("image", 1), "not a decodable image (supported formats: PNG)")
    error = from_status("StatusCode.INVALID_ARGUMENT", wire)
    names = {("image", 1): "messages[0].content[2].image_url.url"}
    mapped = from_vlm_error(error, 1, lambda field, index: names.get((field, index)))
    assert mapped.param == "messages[0].content[2].image_url.url"
    assert mapped.message == "messages[0].content[2].image_url.url: not a decodable image (supported formats: PNG)"
    inside = InvalidInputError("reserved", FieldRef("messages", 0, ".content[1].text"))
    nested = from_vlm_error(inside, 1, lambda f, i: f"{f}[{i}]")
    assert nested.param == "messages[0].content[1].text" and nested.message == "messages[0].content[1].text: reserved"


def test_a_message_that_only_looks_like_it_names_a_field_sets_no_param() -> None:
    error = InvalidInputError("max_tokens: must be at least 1")  # text, not data: a client-side or foreign message
    mapped = from_vlm_error(error, 1, lambda field, index: field)
    assert mapped.param is None and mapped.message == "max_tokens: must be at least 1"


def test_a_field_the_route_does_not_know_keeps_the_servers_words_without_a_param() -> None:
    error = InvalidInputError("must be finite", FieldRef("image_embeds"))
    mapped = from_vlm_error(error, 1, lambda field, index: None)
    assert mapped.param is None and mapped.message == "image_embeds: must be finite"


def test_the_error_body_is_the_openai_error_object() -> None:
    body = ApiError(404, "no such model", param="model", code="model_not_found").body()
    assert body == {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert ApiError(503, "down").type == "server_error" and ApiError(429, "slow down").type == "rate_limit_error"
