"""An OpenAI chat request as the decoder's conversation: ``{"type": "image"}`` placeholders in the messages and
the images' URLs beside them, in order, each with the parameter that names it in errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from client.catalog import ServedModel
from client.parameters import PARAMETERS_BY_NAME
from client.pixel_parameters import PIXEL_PARAMETERS_BY_NAME
from client.video_parameters import MAX_VIDEOS, VIDEO_PARAMETERS_BY_NAME
from gateway.errors import FieldNames, invalid
from gateway.schemas.chat import ChatCompletionRequest, TextPart, VideoFramesPart, VideoUrlItem
from gateway.schemas.common import ImageUrlItem


@dataclass(frozen=True)
class Conversation:
    messages: list[dict[str, Any]]
    image_urls: list[tuple[str, str]]  # (url, parameter)
    video_urls: list[tuple[str, str]] = field(default_factory=list)  # (url, parameter), {"type": "video"} items


def conversation(request: ChatCompletionRequest, max_images: int) -> Conversation:
    """A video_url part becomes a ``{"type": "video"}`` placeholder (Triton decodes and samples the clip); a video
    given as frames becomes its frames' image placeholders, passed whole."""
    messages, image_urls, video_urls = [], [], []
    for i, message in enumerate(request.messages):
        role = "system" if message.role == "developer" else message.role  # the chat templates know "system"
        if isinstance(message.content, str):
            messages.append({"role": role, "content": message.content})
            continue
        items: list[dict[str, str]] = []
        for j, part in enumerate(message.content):
            if isinstance(part, TextPart):
                items.append({"type": "text", "text": part.text})
            elif isinstance(part, ImageUrlItem):
                items.append({"type": "image"})
                image_urls.append((part.image_url.url, f"messages[{i}].content[{j}].image_url.url"))
            elif isinstance(part, VideoUrlItem):
                items.append({"type": "video"})
                video_urls.append((part.video_url.url, f"messages[{i}].content[{j}].video_url.url"))
            elif isinstance(part, VideoFramesPart):
                items += [{"type": "image"}] * len(part.video)
                image_urls += [(url, f"messages[{i}].content[{j}].video[{k}]") for k, url in enumerate(part.video)]
        messages.append({"role": role, "content": items})
    if len(image_urls) > max_images:
        message = f"at most {max_images} images (video frames included) per request, got {len(image_urls)}"
        raise invalid("messages", message, "too_many_images")
    if len(video_urls) > MAX_VIDEOS:
        raise invalid("messages", f"at most {MAX_VIDEOS} videos per request, got {len(video_urls)}", "too_many_videos")
    return Conversation(messages, image_urls, video_urls)


def generation_parameters(request: ChatCompletionRequest, max_choices: int) -> dict[str, Any]:
    """The decoder's parameters; omitted ones take the server's defaults (temperature 0: greedy)."""
    if request.choices > max_choices:
        raise invalid("n", f"at most {max_choices} choices per request, got {request.choices}")
    if request.max_tokens and request.max_completion_tokens and request.max_tokens != request.max_completion_tokens:
        raise invalid("max_completion_tokens", "differs from max_tokens; give one of them")
    if request.stream_options is not None and not request.stream:
        raise invalid("stream_options", "only allowed with stream: true")
    names = [*PARAMETERS_BY_NAME, *VIDEO_PARAMETERS_BY_NAME]
    parameters = {name: getattr(request, name, None) for name in names if name != "stream"}
    parameters["max_tokens"] = request.max_completion_tokens or request.max_tokens
    parameters = {name: value for name, value in parameters.items() if value is not None}
    parameters.update({name: value for name, (value, _) in pixel_budget(request).items()})
    if request.stop_strings:
        parameters["stop"] = request.stop_strings
    if request.response_format is not None and request.response_format.type != "text":
        parameters["response_format"] = request.response_format.model_dump(by_alias=True, exclude_none=True)
    return parameters


def pixel_budget(request: ChatCompletionRequest) -> dict[str, tuple[int, str]]:
    """min_pixels / max_pixels -> (value, the parameter that gave it), from the top level or mm_processor_kwargs; the
    two may repeat a value but not contradict it."""
    budget: dict[str, tuple[int, str]] = {}
    kwargs = request.mm_processor_kwargs
    for name in PIXEL_PARAMETERS_BY_NAME:
        top, nested = getattr(request, name), getattr(kwargs, name) if kwargs is not None else None
        if top is not None and nested is not None and top != nested:
            raise invalid(f"mm_processor_kwargs.{name}", f"is {nested}, but {name} is {top}; give one of them")
        if nested is not None:
            budget[name] = (nested, f"mm_processor_kwargs.{name}")
        elif top is not None:
            budget[name] = (top, name)
    return budget


def check_model_inputs(request: ChatCompletionRequest, served: ServedModel) -> None:
    """A pixel budget for a model whose preprocessing has none (it resizes every image its own way) is refused, not
    ignored: the model's chat ensemble declares the inputs it takes (client.catalog)."""
    for name, (_, param) in pixel_budget(request).items():
        if name not in served.inputs:
            message = f"the model {served.name!r} takes no pixel budget: its preprocessing sizes every image itself"
            raise invalid(param, message, "unsupported_parameter")


def choice_parameters(parameters: dict[str, Any], choice: int) -> dict[str, Any]:
    """Choice k samples with seed + k, so n sampled choices differ and each repeats with the same seed."""
    if choice == 0 or "seed" not in parameters:
        return parameters
    return {**parameters, "seed": (parameters["seed"] + choice) % 2**63}


def triton_fields(request: ChatCompletionRequest, conversation: Conversation) -> FieldNames:
    """Triton's field names in a rejection -> this request's parameters."""
    length_param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
    budget = pixel_budget(request)

    def name(field: str, index: int | None) -> str | None:
        if field == "image" and index is not None and index < len(conversation.image_urls):
            return conversation.image_urls[index][1]
        if field == "video" and index is not None and index < len(conversation.video_urls):
            return conversation.video_urls[index][1]
        if field in ("image", "video", "sampled_frames"):
            return "messages"
        if field in VIDEO_PARAMETERS_BY_NAME:
            return field
        if field in PIXEL_PARAMETERS_BY_NAME:
            return budget[field][1] if field in budget else field
        if field == "max_tokens":
            return length_param
        if field in PARAMETERS_BY_NAME or field in ("messages", "stop", "response_format"):
            return field if index is None else f"{field}[{index}]"
        return None

    return name
