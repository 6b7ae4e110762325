"""serving.generation.params: sampling tensors become SamplingParams; bad values fail naming the field and limit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from serving.errors import InvalidInputError
from serving.generation.params import GenerationLimits, SamplingParams, StructuredOutput, parse_sampling_params

LIMITS = GenerationLimits(max_tokens_limit=512)


def parse(**tensors: np.ndarray) -> SamplingParams:
    return parse_sampling_params(tensors, LIMITS)


def message_of(**tensors: np.ndarray) -> str:
    with pytest.raises(InvalidInputError) as caught:
        parse(**tensors)
    return str(caught.value)


def i32(value: int) -> np.ndarray:
    return np.array([value], dtype=np.int32)


def f32(value: float) -> np.ndarray:
    return np.array([value], dtype=np.float32)


def stops(*items: bytes) -> np.ndarray:
    return np.array(list(items), dtype=object)


# GenerationLimits


def test_generation_limits_default_to_16_stop_strings_of_256_bytes() -> None:
    assert (LIMITS.max_stop_strings, LIMITS.max_stop_bytes) == (16, 256)


@pytest.mark.parametrize("field", ["max_tokens_limit", "max_stop_strings", "max_stop_bytes"])
@pytest.mark.parametrize("value", [0, -1, True])
def test_generation_limits_reject_a_limit_that_is_not_a_positive_integer(field: str, value: int) -> None:
    arguments = {"max_tokens_limit": 512, field: value}
    with pytest.raises(ValueError, match=f"GenerationLimits.{field} must be a positive integer"):
        GenerationLimits(**arguments)


def test_generation_limits_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        LIMITS.max_tokens_limit = 1  # type: ignore[misc]


# Defaults


def test_a_request_without_sampling_tensors_gets_greedy_defaults() -> None:
    params = parse()
    assert params == SamplingParams(numbers={"temperature": 0.0})
    assert (params.max_tokens, params.stream, params.top_logprobs) == (None, False, 0)
    assert (params.stop, params.structured) == ((), None)


def test_a_request_with_every_tensor_is_parsed_into_python_values() -> None:
    params = parse(
        max_tokens=i32(64),
        temperature=f32(0.5),
        top_p=f32(0.25),
        top_k=i32(40),
        min_p=f32(0.125),
        seed=np.array([2**63 - 1], dtype=np.int64),
        repetition_penalty=f32(1.5),
        presence_penalty=f32(-2.0),
        frequency_penalty=f32(2.0),
        top_logprobs=i32(20),
        min_tokens=i32(3),
        ignore_eos=np.array([True]),
        stop=stops(b"\n", "fin ✓".encode()),
        stream=np.array([True]),
        response_format=stops(b'{"type": "json_object"}'),
    )
    assert params == SamplingParams(
        numbers={
            "max_tokens": 64,
            "temperature": 0.5,
            "top_p": 0.25,
            "top_k": 40,
            "min_p": 0.125,
            "seed": 2**63 - 1,
            "repetition_penalty": 1.5,
            "presence_penalty": -2.0,
            "frequency_penalty": 2.0,
            "top_logprobs": 20,
            "min_tokens": 3,
            "ignore_eos": True,
            "stream": True,
        },
        stop=("\n", "fin ✓"),
        structured=StructuredOutput(schema=None),
    )
    numbers = params.numbers
    assert type(numbers["max_tokens"]) is int and type(numbers["temperature"]) is float
    assert type(numbers["stream"]) is bool and params.stream and params.top_logprobs == 20


def test_a_one_element_tensor_of_any_rank_is_a_scalar() -> None:
    assert parse(max_tokens=np.array([[7]], dtype=np.int32)).max_tokens == 7


# Scalars must hold one value of the right kind


@pytest.mark.parametrize("field", ["max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "stream"])
@pytest.mark.parametrize("count", [0, 2])
def test_a_scalar_tensor_must_hold_exactly_one_value(field: str, count: int) -> None:
    array = np.ones(count, dtype=np.bool_ if field == "stream" else np.int32)
    assert message_of(**{field: array}) == f"{field}: expected exactly 1 value, got {count}"


def test_an_integer_field_rejects_a_float_tensor_instead_of_truncating_it() -> None:
    assert message_of(max_tokens=f32(1.5)) == "max_tokens: expected an integer, got float32"


def test_stream_must_be_a_bool_tensor() -> None:
    assert message_of(stream=i32(1)) == "stream: expected a bool, got int32"


# max_tokens


@pytest.mark.parametrize("value", [1, 512])
def test_max_tokens_accepts_values_from_one_to_the_limit(value: int) -> None:
    assert parse(max_tokens=i32(value)).max_tokens == value


@pytest.mark.parametrize("value", [0, -5, 513])
def test_max_tokens_outside_one_to_the_limit_is_rejected(value: int) -> None:
    assert message_of(max_tokens=i32(value)) == f"max_tokens: must lie in [1, 512], got {value}"


# ranges come from client.parameters


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", np.nan, "temperature: must be a finite number in [0, 2], got nan"),
        ("temperature", np.inf, "temperature: must be a finite number in [0, 2], got inf"),
        ("temperature", -0.5, "temperature: must lie in [0, 2], got -0.5"),
        ("temperature", 2.5, "temperature: must lie in [0, 2], got 2.5"),
        ("top_p", 0.0, "top_p: must lie in (0, 1], got 0"),
        ("top_p", 1.5, "top_p: must lie in (0, 1], got 1.5"),
        ("top_p", np.nan, "top_p: must be a finite number in (0, 1], got nan"),
        ("min_p", 1.25, "min_p: must lie in [0, 1], got 1.25"),
        ("repetition_penalty", 0.0, "repetition_penalty: must lie in (0, inf), got 0"),
        ("presence_penalty", -2.5, "presence_penalty: must lie in [-2, 2], got -2.5"),
        ("frequency_penalty", 3.0, "frequency_penalty: must lie in [-2, 2], got 3"),
    ],
)
def test_a_real_parameter_out_of_its_range_is_rejected_naming_the_range(field: str, value: float, message: str) -> None:
    assert message_of(**{field: f32(value)}) == message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("top_k", -1, "top_k: must lie in [0, inf), got -1"),
        ("top_logprobs", 21, "top_logprobs: must lie in [0, 20], got 21"),
        ("min_tokens", -1, "min_tokens: must lie in [0, inf), got -1"),
    ],
)
def test_an_integer_parameter_out_of_its_range_is_rejected(field: str, value: int, message: str) -> None:
    assert message_of(**{field: i32(value)}) == message


def test_top_p_of_one_is_accepted() -> None:
    assert parse(top_p=f32(1.0)).numbers["top_p"] == 1.0


# seed


def test_a_negative_seed_is_rejected() -> None:
    message = message_of(seed=np.array([-1], dtype=np.int64))
    assert message == "seed: must lie in [0, 9223372036854775807], got -1"


def test_a_seed_above_the_int64_range_is_rejected() -> None:
    message = message_of(seed=np.array([2**63], dtype=np.uint64))
    assert message == "seed: must lie in [0, 9223372036854775807], got 9223372036854775808"


# stop


def test_stop_strings_are_read_from_a_flattened_bytes_tensor() -> None:
    assert parse(stop=np.array([[b"a"], [b"b"]], dtype=object)).stop == ("a", "b")


def test_an_empty_stop_tensor_means_no_stop_strings() -> None:
    assert parse(stop=stops()).stop == ()


def test_a_whitespace_stop_string_is_accepted() -> None:
    assert parse(stop=stops(b"\n\n")).stop == ("\n\n",)


def test_too_many_stop_strings_are_rejected() -> None:
    assert message_of(stop=stops(*[b"x"] * 1000)) == "stop: at most 16 stop strings, got 1000"


def test_exactly_the_maximum_number_of_stop_strings_is_accepted() -> None:
    assert len(parse(stop=stops(*[b"x"] * 16)).stop) == 16


def test_a_stop_string_that_is_not_utf8_is_rejected_without_echoing_it() -> None:
    message = message_of(stop=stops(b"ok", b"bad\xff\xfe"))
    assert message == "stop[1]: not valid UTF-8"


def test_an_empty_stop_string_is_rejected() -> None:
    assert message_of(stop=stops(b"")) == "stop[0]: empty; stop strings must hold at least 1 byte"


def test_a_stop_string_over_the_byte_limit_is_rejected_counting_bytes() -> None:
    message = message_of(stop=stops("é".encode() * 129))  # 129 characters, 258 bytes
    assert message == "stop[0]: 258 bytes, the limit is 256"


def test_a_stop_string_exactly_at_the_byte_limit_is_accepted() -> None:
    assert parse(stop=stops(b"y" * 256)).stop == ("y" * 256,)


# response_format


def formats(spec: object) -> np.ndarray:
    return stops(__import__("json").dumps(spec).encode())


def test_a_text_response_format_constrains_nothing() -> None:
    assert parse(response_format=formats({"type": "text"})).structured is None


def test_a_json_schema_response_format_carries_its_schema() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    spec = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}
    assert parse(response_format=formats(spec)).structured == StructuredOutput(schema=schema)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "xml"}, 'response_format.type: must be "text", "json_object" or "json_schema"'),
        ({"type": "json_schema"}, 'response_format.json_schema: expected {"name": ..., "schema": {...}}'),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "objec"}}},
            "response_format.json_schema.schema: not a valid JSON schema at type",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {"a": {"minLength": -1}}}}},
            "response_format.json_schema.schema: not a valid JSON schema at properties/a/minLength",
        ),
    ],
)
def test_a_malformed_response_format_is_rejected_naming_the_field(spec: object, message: str) -> None:
    assert message_of(response_format=formats(spec)) == message


def test_a_response_format_that_is_not_json_is_rejected() -> None:
    assert message_of(response_format=stops(b"{nope")).startswith("response_format: not valid JSON")


def test_a_schema_over_the_byte_limit_is_refused_before_it_is_read() -> None:
    big = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"enum": ["x" * 40_000]}}}
    assert message_of(response_format=formats(big)).startswith("response_format: text is 40")
    assert "the limit is 32768" in message_of(response_format=formats(big))


def test_a_schema_nested_too_deep_is_refused_with_the_limit() -> None:
    schema: dict = {"type": "string"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"a": schema}}
    spec = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert message_of(response_format=formats(spec)) == (
        "response_format.json_schema.schema: nested deeper than 16 levels"
    )
