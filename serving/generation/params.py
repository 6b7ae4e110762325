"""Sampling parameters of one generation request, parsed from the optional request tensors and validated
against the one table of generation parameters (``client.parameters``), then handed to vLLM."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from client.field_errors import FieldRef
from client.parameters import (
    GENERATION_PARAMETERS,
    MAX_RESPONSE_FORMAT_BYTES,
    MAX_SCHEMA_DEPTH,
    MAX_STOP_BYTES,
    MAX_STOP_STRINGS,
    NumberParameter,
)
from serving.errors import InvalidInputError
from serving.validators import as_bytes_list, decode_text

RESPONSE_FORMAT = FieldRef("response_format")
SCHEMA = RESPONSE_FORMAT.key("json_schema").key("schema")


@dataclass(frozen=True)
class GenerationLimits:
    """Server-side limits on what a request may ask for (operator configuration, not client input)."""

    max_tokens_limit: int
    max_stop_strings: int = MAX_STOP_STRINGS
    max_stop_bytes: int = MAX_STOP_BYTES  # per stop string

    def __post_init__(self) -> None:
        for name in ("max_tokens_limit", "max_stop_strings", "max_stop_bytes"):
            value = getattr(self, name)
            # bool is an int subclass; True as a limit is surely a configuration mistake.
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GenerationLimits.{name} must be a positive integer, got {value}")


@dataclass(frozen=True)
class StructuredOutput:
    """What the completion must be: any JSON object, or JSON valid against ``schema``."""

    schema: dict[str, Any] | None  # None: any JSON object


@dataclass(frozen=True)
class SamplingParams:
    """The request's numbers (only those it sent, plus the table's defaults), stop strings and output format."""

    numbers: dict[str, int | float | bool] = field(default_factory=dict)
    stop: tuple[str, ...] = ()
    structured: StructuredOutput | None = None

    @property
    def max_tokens(self) -> int | None:
        return self.numbers.get("max_tokens")  # type: ignore[return-value]

    @property
    def stream(self) -> bool:
        return bool(self.numbers.get("stream", False))

    @property
    def top_logprobs(self) -> int:
        return int(self.numbers.get("top_logprobs", 0))


def parse_sampling_params(inputs: dict[str, np.ndarray], limits: GenerationLimits) -> SamplingParams:
    """Read the optional generation tensors of a request; an absent tensor takes the table's default."""
    numbers: dict[str, int | float | bool] = {}
    for parameter in GENERATION_PARAMETERS:
        if parameter.name == "max_tokens":  # bounded by the model's context, which only the server knows
            parameter = replace(parameter, maximum=limits.max_tokens_limit)
        value = number_input(inputs, parameter)
        if value is None:
            value = parameter.default
        if value is not None:
            numbers[parameter.name] = value
    return SamplingParams(
        numbers=numbers, stop=_stop(inputs, limits) or (), structured=_response_format(inputs.get("response_format"))
    )


_KINDS = {"BOOL": ("b", "a bool"), "FP32": ("fiu", "a number")}  # numpy kinds a tensor may have, and their name


def number_input(inputs: dict[str, np.ndarray], parameter: NumberParameter) -> int | float | bool | None:
    """The single value of an optional one-element tensor, as a Python number; None when absent."""
    if parameter.name not in inputs:
        return None
    array = np.asarray(inputs[parameter.name])
    if array.size != 1:
        raise InvalidInputError(parameter.name, f"expected exactly 1 value, got {array.size}")
    # Checking the kind, not the exact width, so a float never gets silently truncated to an int.
    kinds, label = {"BOOL": ("b", "a bool"), "FP32": ("fiu", "a number")}.get(
        parameter.triton_type, ("iu", "an integer")
    )
    if array.dtype.kind not in kinds:
        raise InvalidInputError(parameter.name, f"expected {label}, got {array.dtype.name}")
    value = parameter.python_type(array.reshape(-1)[0].item())
    if (problem := parameter.problem(value)) is not None:
        raise InvalidInputError(parameter.name, problem.removeprefix(f"{parameter.name}: "))  # the table's text
    return value


def _stop(inputs: dict[str, np.ndarray], limits: GenerationLimits) -> tuple[str, ...] | None:
    if "stop" not in inputs:
        return None
    raw = as_bytes_list(inputs["stop"])
    if len(raw) > limits.max_stop_strings:
        raise InvalidInputError("stop", f"at most {limits.max_stop_strings} stop strings, got {len(raw)}")
    return tuple(_stop_string(index, item, limits.max_stop_bytes) for index, item in enumerate(raw))


def _stop_string(index: int, raw: bytes, max_bytes: int) -> str:
    # Whitespace is allowed: "\n" is one of the most common stop strings.
    if not raw:
        raise InvalidInputError(FieldRef("stop", index), "empty; stop strings must hold at least 1 byte")
    if len(raw) > max_bytes:
        raise InvalidInputError(FieldRef("stop", index), f"{len(raw)} bytes, the limit is {max_bytes}")
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidInputError(FieldRef("stop", index), "not valid UTF-8") from None


def _response_format(array: np.ndarray | None) -> StructuredOutput | None:
    """OpenAI's ``response_format``: ``text`` (no constraint), ``json_object`` or ``json_schema``."""
    if array is None:
        return None
    items = as_bytes_list(array)
    if len(items) != 1:
        raise InvalidInputError("response_format", f"expected exactly one element, got {len(items)}")
    text = decode_text("response_format", items[0], MAX_RESPONSE_FORMAT_BYTES)
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            "response_format", f"not valid JSON (line {error.lineno}, column {error.colno})"
        ) from None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return StructuredOutput(schema=None)
    if kind != "json_schema":
        raise InvalidInputError(RESPONSE_FORMAT.key("type"), 'must be "text", "json_object" or "json_schema"')
    json_schema = spec.get("json_schema")
    if not isinstance(json_schema, dict) or not isinstance(json_schema.get("schema"), dict):
        raise InvalidInputError(RESPONSE_FORMAT.key("json_schema"), 'expected {"name": ..., "schema": {...}}')
    schema = json_schema["schema"]
    _check_schema(schema)
    return StructuredOutput(schema=schema)


def _check_schema(schema: dict[str, Any]) -> None:
    import jsonschema

    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise InvalidInputError(SCHEMA, f"nested deeper than {MAX_SCHEMA_DEPTH} levels")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(part) for part in error.path) or "the root"
        raise InvalidInputError(SCHEMA, f"not a valid JSON schema at {where}") from None


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


# vLLM's names for the table's numbers, where they differ: OpenAI's top_logprobs is vLLM's logprobs.
_VLLM_NAMES = {"top_logprobs": "logprobs"}
_NOT_SAMPLING = ("stream", "max_tokens")


def vllm_sampling_params(params: SamplingParams, max_tokens: int, allowed_token_ids: list[int] | None) -> Any:
    """vLLM's ``SamplingParams`` for a validated request: text deltas as they come, and the logprob of each
    sampled token (plus ``top_logprobs`` alternatives) under the model's unprocessed distribution.
    ``allowed_token_ids``: the tokenizer's ids when the model has more output rows than tokens; vLLM's output
    handler dies, and the engine with it, on a sampled id that the tokenizer cannot convert."""
    from vllm import SamplingParams as VllmSamplingParams
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    numbers = {
        _VLLM_NAMES.get(name, name): value for name, value in params.numbers.items() if name not in _NOT_SAMPLING
    }
    structured = None
    if params.structured is not None:
        schema = params.structured.schema
        structured = (
            StructuredOutputsParams(json=schema) if schema is not None else StructuredOutputsParams(json_object=True)
        )
    return VllmSamplingParams(
        **{"logprobs": 0, **numbers},
        max_tokens=max_tokens,
        stop=list(params.stop),
        output_kind=RequestOutputKind.DELTA,
        allowed_token_ids=allowed_token_ids,
        structured_outputs=structured,
    )
