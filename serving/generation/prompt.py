"""A request's conversation -> prompt token ids, exactly as the checkpoint's ``LlavaProcessor`` builds them.

The messages JSON is checked strictly, rendered with the checkpoint's chat template and tokenized with the
BOS token, as the processor does (vLLM expands each image placeholder into the image's tokens). Every rule
failure names the field and the limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from client.field_errors import FieldRef
from serving.errors import InvalidInputError
from serving.validators import decode_text

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class PromptRules:
    image_token: str  # the placeholder string, e.g. "<image>" (vLLM expands each into that image's tokens)
    max_images: int
    max_messages_bytes: int


def parse_messages(raw: bytes, rules: PromptRules) -> list[dict[str, Any]]:
    """The ``messages`` input as a list of ``{"role", "content": [items]}`` (string content normalised)."""
    text = decode_text("messages", raw, rules.max_messages_bytes)
    try:
        messages = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError("messages", f"not valid JSON (line {error.lineno}, column {error.colno})") from None
    if not isinstance(messages, list) or not messages:
        raise InvalidInputError("messages", 'expected a non-empty JSON list of {"role": ..., "content": ...}')
    normalised = [_message(FieldRef("messages", i), message, rules) for i, message in enumerate(messages)]
    if normalised[-1]["role"] != "user":
        raise InvalidInputError("messages", "the last message must have role 'user' (the turn to answer)")
    return normalised


def _message(field: FieldRef, message: object, rules: PromptRules) -> dict[str, Any]:
    if not isinstance(message, dict) or set(message) - {"role", "content"}:
        raise InvalidInputError(field, 'expected an object with only "role" and "content"')
    role = message.get("role")
    if role not in ROLES:
        raise InvalidInputError(field.key("role"), f"must be one of {', '.join(ROLES)}")
    content = message.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise InvalidInputError(field.key("content"), "expected a string or a non-empty list of content items")
    items = field.key("content")
    return {"role": role, "content": [_item(items.item(i), item, rules) for i, item in enumerate(content)]}


def _item(field: FieldRef, item: object, rules: PromptRules) -> dict[str, str]:
    if item in ({"type": "image"}, {"type": "video"}):
        return dict(item)  # type: ignore[arg-type]
    if not isinstance(item, dict) or item.get("type") != "text" or set(item) != {"type", "text"}:
        raise InvalidInputError(field, 'expected {"type": "text", "text": ...}, {"type": "image"} or {"type": "video"}')
    text = item["text"]
    if not isinstance(text, str):
        raise InvalidInputError(field.key("text"), "expected a string")
    if rules.image_token in text:
        raise InvalidInputError(
            field.key("text"),
            f'contains the reserved image token {rules.image_token}; send images as {{"type": "image"}} items',
        )
    return {"type": "text", "text": text}


def count_images(messages: list[dict[str, Any]]) -> int:
    return sum(item["type"] == "image" for message in messages for item in message["content"])


def count_videos(messages: list[dict[str, Any]]) -> int:
    return sum(item["type"] == "video" for message in messages for item in message["content"])


def check_videos(placeholders: int, videos: int) -> None:
    if placeholders != videos:
        raise InvalidInputError(
            "messages", f'{placeholders} video placeholders ({{"type": "video"}}) but {videos} videos were sent'
        )


def expand_videos(
    messages: list[dict[str, Any]], frames: list[int], images: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """Each video placeholder becomes its frames' image placeholders (a LLaVA-family model sees a video as its
    frames, in order). Also the order in which the request's pictures, ``images`` images then each video's
    ``frames``, appear in the expanded conversation (indices into that list)."""
    starts = [images + sum(frames[:i]) for i in range(len(frames))]
    next_image, next_video, order = 0, 0, []
    expanded = []
    for message in messages:
        content = []
        for item in message["content"]:
            if item["type"] == "image":
                order.append(next_image)
                next_image += 1
                content.append(item)
            elif item["type"] == "video":
                start, count = starts[next_video], frames[next_video]
                order += range(start, start + count)
                next_video += 1
                content += [{"type": "image"}] * count
            else:
                content.append(item)
        expanded.append({**message, "content": content})
    return expanded, order


def check_images(placeholders: int, images: int, max_images: int) -> None:
    if images > max_images:
        raise InvalidInputError("image", f"at most {max_images} images per request, got {images}")
    if placeholders != images:
        raise InvalidInputError(
            "messages", f'{placeholders} image placeholders ({{"type": "image"}}) but {images} images were sent'
        )


def prompt_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """Render and tokenize (with BOS), as ``LlavaProcessor`` does, with one image token per image: vLLM expands
    each into the image's tokens (a prompt that is already expanded would be expanded again)."""
    rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(rendered, add_special_tokens=True)["input_ids"])
