"""Pure validators shared by the python-backend models. Each raises InvalidInputError naming the field."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from serving.errors import InvalidInputError


def require_count(field: str, count: int, maximum: int) -> None:
    if count < 1:
        raise InvalidInputError(f"{field}: at least one item is required, got none")
    if count > maximum:
        raise InvalidInputError(f"{field}: at most {maximum} items per request, got {count}")


def as_bytes_list(array: np.ndarray) -> list[bytes]:
    """A TYPE_STRING input as a flat list of bytes objects."""
    return [x if isinstance(x, bytes) else bytes(x) for x in np.asarray(array, dtype=object).reshape(-1)]


def decode_text(field: str, raw: bytes, max_bytes: int) -> str:
    if len(raw) > max_bytes:
        raise InvalidInputError(f"{field}: text is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"{field}: not valid UTF-8 (bad byte at offset {error.start})") from None
    if not text.strip():
        raise InvalidInputError(f"{field}: text must not be empty")
    return text


def require_shape(field: str, shape: Sequence[int], expected: Sequence[int]) -> None:
    """``expected`` may hold -1 for a free dim."""
    if len(shape) != len(expected) or any(e != -1 and s != e for s, e in zip(shape, expected, strict=False)):
        raise InvalidInputError(f"{field}: expected shape {list(expected)} (-1 = any), got {list(shape)}")


def require_dtype(field: str, dtype: np.dtype, expected: str) -> None:
    if np.dtype(dtype) != np.dtype(expected):
        raise InvalidInputError(f"{field}: expected dtype {expected}, got {np.dtype(dtype).name}")


def require_finite(field: str, array: np.ndarray) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInputError(f"{field}: values must be finite (no NaN or infinity)")


def require_range(field: str, array: np.ndarray, low: int, high: int) -> None:
    if array.size and (array.min() < low or array.max() > high):
        raise InvalidInputError(f"{field}: values must lie in [{low}, {high}], got [{array.min()}, {array.max()}]")


def positive_int(name: str, value: str) -> int:
    """A model-config parameter that must be a positive integer (an operator error, not a client one)."""
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"parameter {name} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"parameter {name} must be a positive integer, got {value}")
    return number
