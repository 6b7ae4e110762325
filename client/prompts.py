"""The instructions behind the generation tasks, and reading a structured answer back."""

from __future__ import annotations

import json
import re
from typing import Any

from client.errors import InvalidInputError

CAPTION_STYLES = {
    "descriptive": "Describe this image in one or two sentences: the main subjects, their colours and positions.",
    "creative": "Write an imaginative, vivid one-sentence caption for this image.",
    "technical": "Describe this image precisely and objectively: the objects, their count, colours, sizes and "
    "layout, in one paragraph.",
    "poetic": "Write a short poem of at most four lines inspired by this image.",
}

STRUCTURED = (
    "Extract the information in this image as one JSON object whose keys name the fields and whose values "
    "hold their contents. Answer with the JSON object only."
)
DOCUMENT_KINDS = {
    "summary": "Summarise this document in a few sentences.",
    "extract_tables": "Extract every table in this document as Markdown tables, keeping the headers.",
    "key_points": "List the key points of this document as short bullet points.",
    "numbers": "List every number in this document with what it refers to, one per line.",
    "structured": STRUCTURED,
}
# Kinds whose answer the server constrains to JSON (OpenAI's response_format): it parses, whatever the model.
DOCUMENT_FORMATS = {"structured": {"type": "json_object"}}


def json_format(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """``response_format`` for a JSON answer: any object, or one valid against ``schema``."""
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "extraction", "schema": schema, "strict": True}}


# captions(image, n): the k-th of n captions samples at this temperature and above, rising to the top.
CAPTION_TEMPERATURES = (0.6, 1.2)


def user_turn(text: str, images: int = 1, videos: int = 0) -> list[dict[str, Any]]:
    """One user message: ``images`` image placeholders, ``videos`` video placeholders, then the text."""
    pictures = [*([{"type": "image"}] * images), *([{"type": "video"}] * videos)]
    return [{"role": "user", "content": [*pictures, {"type": "text", "text": text}]}]


def caption(style: str) -> list[dict[str, Any]]:
    if style not in CAPTION_STYLES:
        raise InvalidInputError(f"style: {style!r} is not one of {', '.join(CAPTION_STYLES)}")
    return user_turn(CAPTION_STYLES[style])


def question(text: str) -> list[dict[str, Any]]:
    if not text.strip():
        raise InvalidInputError("question: must not be empty")
    return user_turn(text)


def document(kind: str | None = None, query: str | None = None) -> list[dict[str, Any]]:
    """A document analysis of one ``kind``, or a free ``query`` about the document."""
    if (kind is None) == (query is None):
        raise InvalidInputError("give either a document kind or a query, not both")
    if query is not None:
        return question(f"This image is a document. {query}")
    if kind not in DOCUMENT_KINDS:
        raise InvalidInputError(f"kind: {kind!r} is not one of {', '.join(DOCUMENT_KINDS)}")
    return user_turn(DOCUMENT_KINDS[kind])


def structured() -> list[dict[str, Any]]:
    return user_turn(STRUCTURED)


def caption_temperatures(n: int) -> list[float]:
    """n temperatures rising evenly across ``CAPTION_TEMPERATURES``: later captions wander further."""
    if n < 1:
        raise InvalidInputError(f"n: must be at least 1, got {n}")
    low, high = CAPTION_TEMPERATURES
    return [low + (high - low) * k / max(n - 1, 1) for k in range(n)]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_structured(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer (bare, or in a Markdown code fence), else the raw answer (a server
    that constrains the answer to JSON still stops at max_tokens, which can cut the object short)."""
    fenced = _FENCE.search(text)
    candidate = (fenced.group(1) if fenced else text).strip()
    try:
        parsed = json.loads(candidate)
    except ValueError:
        return {"raw_response": text, "structured": False}
    if not isinstance(parsed, dict):
        return {"raw_response": text, "structured": False}
    return parsed
