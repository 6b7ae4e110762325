"""serving.validators: each client-facing check raises InvalidInputError naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from client.field_errors import FieldRef
from serving.errors import InvalidInputError
from serving.validators import (
    as_bytes_list,
    decode_text,
    positive_int,
    require_count,
    require_dtype,
    require_finite,
    require_shape,
)


def message_of(call, *args) -> str:
    with pytest.raises(InvalidInputError) as caught:
        call(*args)
    return str(caught.value)


# require_count


def test_require_count_rejects_zero_items() -> None:
    assert message_of(require_count, "text", 0, 8) == "text: at least one item is required, got none"


def test_require_count_rejects_more_items_than_the_maximum() -> None:
    assert message_of(require_count, "image", 9, 8) == "image: at most 8 items per request, got 9"


@pytest.mark.parametrize("count", [1, 8])
def test_require_count_accepts_counts_from_one_to_the_maximum(count: int) -> None:
    assert require_count("image", count, 8) is None


# as_bytes_list


def test_as_bytes_list_flattens_an_object_array_of_bytes() -> None:
    array = np.array([[b"a", b"bc"], [b"", b"\xff"]], dtype=object)
    assert as_bytes_list(array) == [b"a", b"bc", b"", b"\xff"]


def test_as_bytes_list_turns_fixed_width_numpy_bytes_into_python_bytes() -> None:
    result = as_bytes_list(np.array([b"cat", b"dog"]))
    assert result == [b"cat", b"dog"]
    assert all(type(item) is bytes for item in result)


# decode_text


def test_decode_text_returns_valid_utf8_text() -> None:
    assert decode_text(FieldRef("text", 0), "a photo of a café".encode(), 100) == "a photo of a café"


def test_invalid_utf8_is_rejected_naming_the_field_and_the_offset() -> None:
    message = message_of(decode_text, FieldRef("text", 2), b"abc\xffdef", 100)
    assert message == "text[2]: not valid UTF-8 (bad byte at offset 3)"


def test_a_truncated_multibyte_character_is_reported_at_its_first_byte() -> None:
    raw = "ok é".encode()[:-1]  # drop the continuation byte of é
    assert "offset 3" in message_of(decode_text, FieldRef("text", 0), raw, 100)


@pytest.mark.parametrize("raw", [b"", b"   ", b"\t\n ", "\u3000".encode()])
def test_empty_or_whitespace_only_text_is_rejected(raw: bytes) -> None:
    assert message_of(decode_text, FieldRef("text", 1), raw, 100) == "text[1]: text must not be empty"


def test_text_over_the_byte_limit_is_rejected_counting_bytes_not_characters() -> None:
    raw = "é" * 6  # 6 characters, 12 bytes
    assert (
        message_of(decode_text, FieldRef("text", 0), raw.encode(), 10) == "text[0]: text is 12 bytes, the limit is 10"
    )


def test_text_exactly_at_the_byte_limit_is_accepted() -> None:
    assert decode_text(FieldRef("text", 0), b"x" * 10, 10) == "x" * 10


def test_byte_limit_is_checked_before_decoding() -> None:
    # Over the limit and invalid UTF-8: the cheap size check answers first.
    assert "limit is 4" in message_of(decode_text, FieldRef("text", 0), b"\xff" * 5, 4)


# require_shape


def test_require_shape_accepts_any_size_where_minus_one_is_given() -> None:
    assert require_shape("image", (7, 3), (-1, 3)) is None


def test_require_shape_rejects_a_fixed_dim_that_differs() -> None:
    message = message_of(require_shape, "image", (7, 4), (-1, 3))
    assert message == "image: expected shape [-1, 3] (-1 = any), got [7, 4]"


@pytest.mark.parametrize("shape", [(7,), (7, 3, 1), ()])
def test_require_shape_rejects_a_different_rank(shape: tuple[int, ...]) -> None:
    assert message_of(require_shape, "pixels", shape, (-1, 3)).startswith("pixels: expected shape")


# require_dtype


def test_require_dtype_accepts_the_expected_dtype() -> None:
    assert require_dtype("pixel_values", np.dtype("float32"), "float32") is None


def test_require_dtype_rejects_another_dtype_naming_both() -> None:
    message = message_of(require_dtype, "pixel_values", np.dtype("float64"), "float32")
    assert message == "pixel_values: expected dtype float32, got float64"


# require_finite


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_require_finite_rejects_nan_and_infinity(bad: float) -> None:
    array = np.array([[0.5, bad]], dtype=np.float32)
    assert message_of(require_finite, "embeds", array) == "embeds: values must be finite (no NaN or infinity)"


def test_require_finite_accepts_finite_floats_and_integer_arrays() -> None:
    assert require_finite("embeds", np.array([0.0, -1e30, 1e30], dtype=np.float32)) is None
    assert require_finite("ids", np.array([1, 2, 3], dtype=np.int64)) is None


# positive_int


def test_positive_int_parses_a_positive_integer() -> None:
    assert positive_int("max_batch", "16") == 16


@pytest.mark.parametrize("value", ["0", "-3"])
def test_positive_int_rejects_zero_and_negative_values_naming_the_parameter(value: str) -> None:
    with pytest.raises(ValueError, match=f"parameter max_batch must be a positive integer, got {value}"):
        positive_int("max_batch", value)


def test_positive_int_is_an_operator_error_not_a_client_error() -> None:
    with pytest.raises(ValueError) as caught:
        positive_int("max_batch", "0")
    assert not isinstance(caught.value, InvalidInputError)


def test_positive_int_rejects_non_numeric_text_naming_the_parameter() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        positive_int("max_batch", "lots")
