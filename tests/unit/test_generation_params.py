"""serving.generation.params: sampling tensors become SamplingParams; bad values fail naming the field and limit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from serving.errors import InvalidInputError
from serving.generation.params import GenerationLimits, SamplingParams, parse_sampling_params

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
    assert params == SamplingParams()
    assert params.max_tokens is None
    assert params.greedy
    assert (params.top_p, params.top_k, params.seed, params.repetition_penalty) == (1.0, 0, None, 1.0)
    assert (params.stop, params.stream) == ((), False)


def test_a_request_with_every_tensor_is_parsed_into_python_values() -> None:
    params = parse(
        max_tokens=i32(64),
        temperature=f32(0.5),
        top_p=f32(0.25),
        top_k=i32(40),
        seed=np.array([2**63 - 1], dtype=np.int64),
        repetition_penalty=f32(1.5),
        stop=stops(b"\n", "fin ✓".encode()),
        stream=np.array([True]),
    )
    assert params == SamplingParams(
        max_tokens=64,
        temperature=0.5,
        top_p=0.25,
        top_k=40,
        seed=2**63 - 1,
        repetition_penalty=1.5,
        stop=("\n", "fin ✓"),
        stream=True,
    )
    assert not params.greedy
    assert type(params.max_tokens) is int and type(params.temperature) is float and type(params.stream) is bool


def test_a_one_element_tensor_of_any_rank_is_a_scalar() -> None:
    assert parse(max_tokens=np.array([[7]], dtype=np.int32)).max_tokens == 7


def test_a_zero_temperature_means_greedy() -> None:
    assert parse(temperature=f32(0.0)).greedy


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


# temperature


@pytest.mark.parametrize(("value", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf"), (-0.5, "-0.5")])
def test_temperature_that_is_not_finite_or_is_negative_is_rejected(value: float, shown: str) -> None:
    assert message_of(temperature=f32(value)) == f"temperature: must be finite and >= 0, got {shown}"


# top_p


@pytest.mark.parametrize(("value", "shown"), [(0.0, "0"), (-0.1, "-0.1"), (1.5, "1.5"), (np.nan, "nan")])
def test_top_p_outside_zero_exclusive_to_one_is_rejected(value: float, shown: str) -> None:
    assert message_of(top_p=f32(value)) == f"top_p: must lie in (0, 1], got {shown}"


def test_top_p_of_one_is_accepted() -> None:
    assert parse(top_p=f32(1.0)).top_p == 1.0


# top_k


def test_a_negative_top_k_is_rejected() -> None:
    assert message_of(top_k=i32(-1)) == "top_k: must be >= 0 (0 turns it off), got -1"


# repetition_penalty


@pytest.mark.parametrize(("value", "shown"), [(0.0, "0"), (-1.0, "-1"), (np.inf, "inf"), (np.nan, "nan")])
def test_a_repetition_penalty_that_is_not_finite_and_positive_is_rejected(value: float, shown: str) -> None:
    assert message_of(repetition_penalty=f32(value)) == f"repetition_penalty: must be finite and > 0, got {shown}"


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
    assert message == "stop: string 1 is not valid UTF-8"


def test_an_empty_stop_string_is_rejected() -> None:
    assert message_of(stop=stops(b"")) == "stop: string 0 is empty; stop strings must hold at least 1 byte"


def test_a_stop_string_over_the_byte_limit_is_rejected_counting_bytes() -> None:
    message = message_of(stop=stops("é".encode() * 129))  # 129 characters, 258 bytes
    assert message == "stop: string 0 is 258 bytes, the limit is 256"


def test_a_stop_string_exactly_at_the_byte_limit_is_accepted() -> None:
    assert parse(stop=stops(b"y" * 256)).stop == ("y" * 256,)
