"""Sampling parameters of one generation request, parsed from the optional request tensors and validated."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from serving.errors import InvalidInputError
from serving.validators import as_bytes_list

MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class GenerationLimits:
    """Server-side limits on what a request may ask for (operator configuration, not client input)."""

    max_tokens_limit: int
    max_stop_strings: int = 16
    max_stop_bytes: int = 256  # per stop string

    def __post_init__(self) -> None:
        for name in ("max_tokens_limit", "max_stop_strings", "max_stop_bytes"):
            value = getattr(self, name)
            # bool is an int subclass; True as a limit is surely a configuration mistake.
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GenerationLimits.{name} must be a positive integer, got {value}")


@dataclass(frozen=True)
class SamplingParams:
    """How to pick the next tokens. The defaults give greedy decoding with the server's default length."""

    max_tokens: int | None = None  # None: the server default
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    seed: int | None = None
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    stream: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def parse_sampling_params(inputs: dict[str, np.ndarray], limits: GenerationLimits) -> SamplingParams:
    """Read the optional sampling tensors of a request; an absent tensor takes the default."""
    given = {
        "max_tokens": _max_tokens(inputs, limits.max_tokens_limit),
        "temperature": _temperature(inputs),
        "top_p": _top_p(inputs),
        "top_k": _top_k(inputs),
        "seed": _seed(inputs),
        "repetition_penalty": _repetition_penalty(inputs),
        "stop": _stop(inputs, limits),
        "stream": _stream(inputs),
    }
    return SamplingParams(**{name: value for name, value in given.items() if value is not None})


def _scalar(inputs: dict[str, np.ndarray], name: str, kinds: str, kind_label: str) -> int | float | bool | None:
    """The single value of an optional one-element tensor, as a Python number; None when absent."""
    if name not in inputs:
        return None
    array = np.asarray(inputs[name])
    if array.size != 1:
        raise InvalidInputError(f"{name}: expected exactly 1 value, got {array.size}")
    # Checking the kind, not the exact width, so a float never gets silently truncated to an int.
    if array.dtype.kind not in kinds:
        raise InvalidInputError(f"{name}: expected {kind_label}, got {array.dtype.name}")
    return array.reshape(-1)[0].item()


def _integer(inputs: dict[str, np.ndarray], name: str) -> int | None:
    value = _scalar(inputs, name, "iu", "an integer")
    return None if value is None else int(value)


def _real(inputs: dict[str, np.ndarray], name: str) -> float | None:
    value = _scalar(inputs, name, "fiu", "a number")
    return None if value is None else float(value)


def _stream(inputs: dict[str, np.ndarray]) -> bool | None:
    value = _scalar(inputs, "stream", "b", "a bool")
    return None if value is None else bool(value)


def _max_tokens(inputs: dict[str, np.ndarray], limit: int) -> int | None:
    value = _integer(inputs, "max_tokens")
    if value is not None and not 1 <= value <= limit:
        raise InvalidInputError(f"max_tokens: must lie in [1, {limit}], got {value}")
    return value


def _temperature(inputs: dict[str, np.ndarray]) -> float | None:
    value = _real(inputs, "temperature")
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise InvalidInputError(f"temperature: must be finite and >= 0, got {value:g}")
    return value


def _top_p(inputs: dict[str, np.ndarray]) -> float | None:
    value = _real(inputs, "top_p")
    # NaN fails both comparisons, so it is rejected here too.
    if value is not None and not 0 < value <= 1:
        raise InvalidInputError(f"top_p: must lie in (0, 1], got {value:g}")
    return value


def _top_k(inputs: dict[str, np.ndarray]) -> int | None:
    value = _integer(inputs, "top_k")
    if value is not None and value < 0:
        raise InvalidInputError(f"top_k: must be >= 0 (0 turns it off), got {value}")
    return value


def _seed(inputs: dict[str, np.ndarray]) -> int | None:
    value = _integer(inputs, "seed")
    if value is not None and not 0 <= value <= MAX_SEED:
        raise InvalidInputError(f"seed: must lie in [0, {MAX_SEED}], got {value}")
    return value


def _repetition_penalty(inputs: dict[str, np.ndarray]) -> float | None:
    value = _real(inputs, "repetition_penalty")
    if value is not None and not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"repetition_penalty: must be finite and > 0, got {value:g}")
    return value


def _stop(inputs: dict[str, np.ndarray], limits: GenerationLimits) -> tuple[str, ...] | None:
    if "stop" not in inputs:
        return None
    raw = as_bytes_list(inputs["stop"])
    if len(raw) > limits.max_stop_strings:
        raise InvalidInputError(f"stop: at most {limits.max_stop_strings} stop strings, got {len(raw)}")
    return tuple(_stop_string(index, item, limits.max_stop_bytes) for index, item in enumerate(raw))


def _stop_string(index: int, raw: bytes, max_bytes: int) -> str:
    # Whitespace is allowed: "\n" is one of the most common stop strings.
    if not raw:
        raise InvalidInputError(f"stop: string {index} is empty; stop strings must hold at least 1 byte")
    if len(raw) > max_bytes:
        raise InvalidInputError(f"stop: string {index} is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidInputError(f"stop: string {index} is not valid UTF-8") from None
