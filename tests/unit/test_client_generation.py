"""The client's generation requests and how it reads streamed errors, without a server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from client.errors import InvalidInputError, ServerBusyError, ServerUnavailableError, VLMError
from client.field_errors import FieldRef, encode
from client.generation import (
    GenerationRequest,
    ResponseReader,
    check_declared,
    classify_stream_error,
    declared_inputs,
)

QUESTION = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what is it?"}]}]


@pytest.mark.parametrize(
    ("prefix", "field", "reason"),
    [
        ("", FieldRef("max_tokens"), "must lie in [1, 512], got 0"),
        ("", FieldRef("messages", 0, ".content[1].text"), "contains the reserved image token <image>"),
        ("in ensemble 'llava', ", FieldRef("image", 1), "not a decodable image (supported formats: JPEG)"),
        ("", FieldRef("stop"), "at most 16 stop strings, got 1000"),
    ],
)
def test_a_streamed_rejection_that_names_a_field_is_invalid_input_with_the_field_as_data(
    prefix: str, field: FieldRef, reason: str
) -> None:
    error = classify_stream_error(prefix + encode(field, reason))
    assert type(error) is InvalidInputError
    assert (error.field, error.index, error.member, error.reason) == (field.name, field.index, field.member, reason)
    assert str(error) == f"{field}: {reason}"


def test_a_streamed_message_that_only_looks_like_a_field_error_is_not_blamed_on_the_request() -> None:
    for message in ("llava_decoder: internal error", "max_tokens: must lie in [1, 512], got 0"):
        assert type(classify_stream_error(message)) is VLMError


@pytest.mark.parametrize(
    "message",
    [
        "in ensemble 'llava', llava_decoder: internal error",
        "the request was cancelled",
        "Deadline Exceeded",
        "Request for unknown model: 'llava' is not found",
    ],
)
def test_a_streamed_server_failure_is_not_blamed_on_the_request(message: str) -> None:
    error = classify_stream_error(message)
    assert isinstance(error, VLMError) and not isinstance(error, InvalidInputError)


@pytest.mark.parametrize(
    "message",
    [
        "llava_decoder: busy: 16 requests already wait for a free sequence slot (max_waiting_requests); retry later",
        "in ensemble 'llava', [request id: <id_unknown>] Exceeds maximum queue size",
        "in ensemble 'llava', Request timeout expired",
    ],
)
def test_a_streamed_refusal_for_lack_of_capacity_is_busy_not_invalid_input(message: str) -> None:
    assert type(classify_stream_error(message)) is ServerBusyError


def test_a_streamed_refusal_from_a_server_shutting_down_is_unavailable() -> None:
    message = "[request id: 1f] Server is stopping, scheduler for model has stopped accepting new inference requests"
    assert type(classify_stream_error(message)) is ServerUnavailableError


def test_requests_with_images_go_to_the_ensemble_and_text_only_ones_to_the_decoder() -> None:
    assert GenerationRequest(QUESTION, [b"png"]).model == "llava"
    assert GenerationRequest([{"role": "user", "content": "hi"}]).model == "llava_decoder"


def test_the_http_body_carries_the_id_parameters_and_images_as_data_urls() -> None:
    schema = {"type": "json_object"}
    request = GenerationRequest.of(
        QUESTION, [b"\x89PNG"], False, {}, max_tokens=5, stop=["."], top_logprobs=3, response_format=schema
    )
    body = json.loads(request.http_body())
    assert body["id"] == request.request_id and len(request.request_id) == 32
    assert body["max_tokens"] == 5 and body["stop"] == ["."] and body["stream"] is False
    assert body["top_logprobs"] == 3 and json.loads(body["response_format"]) == schema
    assert body["image"] == ["data:application/octet-stream;base64,iVBORw=="]
    assert json.loads(body["messages"]) == QUESTION
    assert "temperature" not in body


def test_the_grpc_tensors_take_each_parameters_triton_type_from_the_one_table() -> None:
    arrays = GenerationRequest.of(QUESTION, [], True, {}, seed=2**40, min_p=0.5, ignore_eos=True).arrays()
    assert arrays["seed"][0] == "INT64" and arrays["seed"][1].dtype == np.int64
    assert arrays["min_p"][0] == "FP32" and arrays["min_p"][1].dtype == np.float32
    assert arrays["ignore_eos"][0] == "BOOL" and arrays["ignore_eos"][1].tolist() == [True]


def test_an_unknown_generation_parameter_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="'best_of'"):
        GenerationRequest.of(QUESTION, [], True, {}, best_of=2)


def test_alternatives_over_http_are_read_back_from_flattened_rows() -> None:
    final = {"finish_reason": "length", "prompt_tokens": 3, "completion_tokens": 2, "confidence": 0.5}
    alternatives = {"alternative_ids": [[7, 8], [9, 10]], "alternative_logprobs": [[-0.1, -2.0], [-0.3, -1.5]]}
    outputs = {**final, "token_ids": [7, 9], "logprobs": [-0.1, -0.3], "tokens": ["a", "b"], **alternatives}
    (completion,) = ResponseReader().read({**outputs, "alternative_tokens": ["a", "x", "b", "y"]})
    assert [[(a.token_id, a.token, a.logprob) for a in step] for step in completion.alternatives] == [
        [(7, "a", -0.1), (8, "x", -2.0)],
        [(9, "b", -0.3), (10, "y", -1.5)],
    ]


def test_every_request_gets_its_own_id() -> None:
    assert GenerationRequest(QUESTION).request_id != GenerationRequest(QUESTION).request_id


def test_a_one_token_completion_over_http_reads_its_scalar_token_ids_and_logprobs() -> None:
    final = {"finish_reason": "stop", "prompt_tokens": 12, "completion_tokens": 1, "confidence": 0.5}
    (completion,) = ResponseReader().read({**final, "token_ids": 7, "logprobs": -0.69, "tokens": "a"})  # JSON for [7]
    assert completion.token_ids == [7] and completion.logprobs == [-0.69] and completion.tokens == ["a"]


def test_a_pixel_budget_goes_with_images_as_int64_and_not_with_a_text_only_turn() -> None:
    arrays = GenerationRequest.of(QUESTION, [b"png"], True, {}, min_pixels=784, max_pixels=50_000).arrays()
    assert arrays["min_pixels"][0] == "INT64" and arrays["min_pixels"][1].tolist() == [784]
    assert arrays["max_pixels"][1].dtype == np.int64 and arrays["max_pixels"][1].tolist() == [50_000]
    body = json.loads(GenerationRequest.of(QUESTION, [b"png"], True, {}, max_pixels=6272).http_body())
    assert body["max_pixels"] == 6272 and "min_pixels" not in body
    text_only = GenerationRequest.of([{"role": "user", "content": "hi"}], [], True, {}, max_pixels=6272)
    assert "max_pixels" not in text_only.arrays() and "max_pixels" not in json.loads(text_only.http_body())


@pytest.mark.parametrize("value", [3136.0, 3136.5, True, "3136"])
def test_a_pixel_budget_that_is_not_an_integer_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(InvalidInputError) as caught:
        GenerationRequest.of(QUESTION, [b"png"], True, {}, min_pixels=value)
    assert caught.value.field == "min_pixels" and "expected an integer" in str(caught.value)


def test_a_streamed_refusal_of_an_input_the_model_does_not_declare_names_it() -> None:
    error = classify_stream_error("unexpected inference input 'max_pixels' for model 'llava'")
    assert isinstance(error, InvalidInputError) and error.field == "max_pixels"


def test_the_http_check_refuses_a_budget_for_a_model_that_declares_no_such_input() -> None:
    request = GenerationRequest.of(QUESTION, [b"png"], True, {}, max_pixels=6272, max_tokens=2)
    check_declared(request, declared_inputs({"input": [{"name": "image"}, {"name": "max_pixels"}]}))
    with pytest.raises(InvalidInputError) as caught:
        check_declared(request, declared_inputs({"input": [{"name": "image"}, {"name": "max_tokens"}]}))
    assert str(caught.value) == "max_pixels: the model 'llava' takes no such input"


@pytest.mark.parametrize(
    ("name", "value"), [("max_tokens", 3.5), ("top_k", 2.0), ("seed", True), ("top_logprobs", "5")]
)
def test_an_integer_generation_parameter_given_otherwise_is_refused_naming_it_not_truncated(
    name: str, value: object
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        GenerationRequest.of(QUESTION, [], True, {}, **{name: value})
    assert caught.value.field == name and "expected an integer" in str(caught.value)


def test_float_generation_parameters_take_ints_and_floats() -> None:
    arrays = GenerationRequest.of(QUESTION, [], True, {}, temperature=1, top_p=0.5, max_tokens=np.int32(4)).arrays()
    assert arrays["temperature"][1].tolist() == [1.0] and arrays["max_tokens"][1].tolist() == [4]
