"""The generation parameters, defined once: name, Triton datatype, range and meaning.

The decoder's Triton inputs (``export/families/llava/spec.py``), its validation (``serving/generation/params.py``), the
client's request tensors (``client/generation.py``) and the gateway's OpenAI schema (``gateway/schemas/chat.py``)
are all derived from this table. Pure data: the client, the server and the gateway import it alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_SEED = 2**63 - 1
MAX_TOP_LOGPROBS = 20  # OpenAI's limit


@dataclass(frozen=True)
class NumberParameter:
    """A one-value request tensor; absent means the default (``None``: the server's or vLLM's)."""

    name: str
    triton_type: str  # INT32, INT64, FP32 or BOOL
    description: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # the minimum itself is not allowed
    default: float | bool | None = None

    @property
    def numpy_dtype(self) -> str:
        return {"INT32": "int32", "INT64": "int64", "FP32": "float32", "BOOL": "bool"}[self.triton_type]

    @property
    def is_integer(self) -> bool:
        return self.triton_type in ("INT32", "INT64")

    @property
    def python_type(self) -> type:
        return {"INT32": int, "INT64": int, "FP32": float, "BOOL": bool}[self.triton_type]

    def show(self, value: float) -> str:
        return str(int(value)) if self.is_integer and math.isfinite(value) else f"{value:g}"

    def range_text(self) -> str:
        low = "(" if self.exclusive_minimum else "["
        lower = "-inf" if self.minimum is None else self.show(self.minimum)
        upper = "inf)" if self.maximum is None else f"{self.show(self.maximum)}]"
        return f"{low}{lower}, {upper}"

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range, or None when it is allowed."""
        if self.triton_type == "BOOL":
            return None
        if not math.isfinite(value):
            return f"{self.name}: must be a finite number in {self.range_text()}, got {value}"
        below = self.minimum is not None and (value <= self.minimum if self.exclusive_minimum else value < self.minimum)
        above = self.maximum is not None and value > self.maximum
        if below or above:
            return f"{self.name}: must lie in {self.range_text()}, got {self.show(value)}"
        return None


# max_tokens' upper bound is the model's context, so the decoder checks it against the prompt. A default is the
# server's where it differs from vLLM's (greedy unless asked otherwise); absent ones are vLLM's own.
GENERATION_PARAMETERS = (
    NumberParameter("max_tokens", "INT32", "Completion tokens at most (default: the server's)", minimum=1),
    NumberParameter("temperature", "FP32", "0: greedy (the default)", minimum=0, maximum=2, default=0.0),
    NumberParameter("top_p", "FP32", "Nucleus sampling mass", minimum=0, exclusive_minimum=True, maximum=1),
    NumberParameter("top_k", "INT32", "Keep the k likeliest tokens; 0: off", minimum=0),
    NumberParameter("min_p", "FP32", "Drop tokens below min_p times the likeliest's probability", minimum=0, maximum=1),
    NumberParameter("seed", "INT64", "Seed of this request's sampling", minimum=0, maximum=MAX_SEED),
    NumberParameter("repetition_penalty", "FP32", "1: off", minimum=0, exclusive_minimum=True),
    NumberParameter("presence_penalty", "FP32", "OpenAI's; 0: off", minimum=-2, maximum=2),
    NumberParameter("frequency_penalty", "FP32", "OpenAI's; 0: off", minimum=-2, maximum=2),
    NumberParameter("top_logprobs", "INT32", "Alternatives listed per token", minimum=0, maximum=MAX_TOP_LOGPROBS),
    NumberParameter("min_tokens", "INT32", "Completion tokens before EOS or a stop string may end it", minimum=0),
    NumberParameter("ignore_eos", "BOOL", "Generate past EOS, up to max_tokens (benchmarks fix lengths so)"),
    NumberParameter("stream", "BOOL", "Send text as it is made; false: all of it in the final response"),
)
PARAMETERS_BY_NAME = {parameter.name: parameter for parameter in GENERATION_PARAMETERS}

# Text inputs: ``stop`` (BYTES, one element per stop string) and ``response_format`` (BYTES, one JSON object:
# OpenAI's {"type": "json_object"} or {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}).
MAX_STOP_STRINGS = 16
MAX_STOP_BYTES = 256  # per stop string
MAX_RESPONSE_FORMAT_BYTES = 32_768  # a JSON schema larger than this is refused before it is compiled
MAX_SCHEMA_DEPTH = 16  # nesting of a JSON schema's objects and arrays
