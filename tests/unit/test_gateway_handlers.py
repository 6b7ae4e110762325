"""gateway.handlers: pydantic's error locations as OpenAI parameter names, and validation errors as 400s."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from gateway.handlers import param_name, validation_error
from gateway.schemas.chat import ChatCompletionRequest
from gateway.schemas.embeddings import EmbeddingRequest


@pytest.mark.parametrize(
    ("location", "name"),
    [
        (
            (
                "body",
                "messages",
                0,
                "user",
                "content",
                "list[tagged-union[TextPart,ImageUrlItem]]",
                1,
                "image_url",
                "image_url",
                "url",
            ),
            "messages[0].content[1].image_url.url",
        ),
        (("body", "tools"), "tools"),
        (("body", "input", "list[union[str,ImageUrlItem]]", 2, "ImageUrlItem", "image_url"), "input[2].image_url"),
        (("body",), None),
        (("body", "stop", "function-after[_stop_strings(), nullable[union[str,list[str]]]]"), "stop"),
    ],
)
def test_locations_become_parameter_paths(location: tuple, name: str | None) -> None:
    assert param_name(location) == name


def refusal(model: type, body: dict) -> tuple[str | None, str]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(body)
    error = validation_error(RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in raised.value.errors()]))
    assert error.status == 400
    return error.param, error.message


def test_the_deepest_error_of_a_union_is_the_one_reported() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]}]}
    param, message = refusal(ChatCompletionRequest, body)
    assert param == "messages[0].content[0].image_url.url" and message.startswith(param)


def test_unknown_parameters_are_refused_by_name() -> None:
    param, message = refusal(
        ChatCompletionRequest, {"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias": {}}
    )
    assert param == "logit_bias" and "does not support" in message


def test_unsupported_values_say_what_is_supported() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    assert refusal(ChatCompletionRequest, {**base, "presence_penalty": 3})[0] == "presence_penalty"
    assert refusal(ChatCompletionRequest, {**base, "top_logprobs": 21})[0] == "top_logprobs"
    assert refusal(ChatCompletionRequest, {**base, "top_logprobs": 2})[1].endswith("top_logprobs needs logprobs: true")
    assert refusal(ChatCompletionRequest, {**base, "response_format": {"type": "xml"}})[0] == "response_format"
    assert refusal(ChatCompletionRequest, {**base, "stop": [""]})[0] == "stop"
    assert refusal(EmbeddingRequest, {"model": "m", "input": [[1, 2]]})[1].startswith("input: token-id arrays")
    assert refusal(ChatCompletionRequest, {"model": "m", "messages": []})[0] == "messages"
