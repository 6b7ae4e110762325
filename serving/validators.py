"""Pure validators shared by the python-backend models. Each raises InvalidInputError with the field: an input's
name, or a ``FieldRef`` for one element (``FieldRef("image", 1)``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from client.field_errors import FieldRef
from serving.errors import InvalidInputError


def require_count(field: str | FieldRef, count: int, maximum: int) -> None:
    if count < 1:
        raise InvalidInputError(field, "at least one item is required, got none")
    if count > maximum:
        raise InvalidInputError(field, f"at most {maximum} items per request, got {count}")


def as_bytes_list(array: np.ndarray) -> list[bytes]:
    """A TYPE_STRING input as a flat list of bytes objects."""
    return [x if isinstance(x, bytes) else bytes(x) for x in np.asarray(array, dtype=object).reshape(-1)]


def decode_text(field: str | FieldRef, raw: bytes, max_bytes: int) -> str:
    if len(raw) > max_bytes:
        raise InvalidInputError(field, f"text is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as error:
        raise InvalidInputError(field, f"not valid UTF-8 (bad byte at offset {error.start})") from None
    if not text.strip():
        raise InvalidInputError(field, "text must not be empty")
    return text


def require_shape(field: str | FieldRef, shape: Sequence[int], expected: Sequence[int]) -> None:
    """``expected`` may hold -1 for a free dim."""
    if len(shape) != len(expected) or any(e != -1 and s != e for s, e in zip(shape, expected, strict=False)):
        raise InvalidInputError(field, f"expected shape {list(expected)} (-1 = any), got {list(shape)}")


def require_dtype(field: str | FieldRef, dtype: np.dtype, expected: str) -> None:
    if np.dtype(dtype) != np.dtype(expected):
        raise InvalidInputError(field, f"expected dtype {expected}, got {np.dtype(dtype).name}")


def require_finite(field: str | FieldRef, array: np.ndarray) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInputError(field, "values must be finite (no NaN or infinity)")


def require_range(field: str | FieldRef, array: np.ndarray, low: int, high: int) -> None:
    if array.size and (array.min() < low or array.max() > high):
        raise InvalidInputError(field, f"values must lie in [{low}, {high}], got [{array.min()}, {array.max()}]")


def positive_int(name: str, value: str) -> int:
    """A model-config parameter that must be a positive integer (an operator error, not a client one)."""
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"parameter {name} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"parameter {name} must be a positive integer, got {value}")
    return number
