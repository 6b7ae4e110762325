"""``POST /v1/chat/completions``: the OpenAI request, the response and the stream's chunks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from client.parameters import MAX_STOP_BYTES, PARAMETERS_BY_NAME
from client.pixel_parameters import PIXEL_PARAMETERS_BY_NAME
from client.video_parameters import VIDEO_PARAMETERS_BY_NAME
from gateway.schemas.common import ImageUrlItem, Strict

MAX_STOP_STRINGS = 4  # OpenAI's limit


class TextPart(Strict):
    type: Literal["text"]
    text: str


class VideoUrl(Strict):
    url: str = Field(description="A base64 `data:` URL (video/*), or an http(s) URL on a host the operator allows")


class VideoUrlItem(Strict):
    """A clip the server decodes and samples (``video_fps``, ``max_frames``); a LLaVA-family model sees its frames
    as images."""

    type: Literal["video_url"]
    video_url: VideoUrl


class VideoFramesPart(Strict):
    """A clip given as its frames (image URLs, in order): passed whole, each frame an image."""

    type: Literal["video"]
    video: Annotated[list[str], Field(min_length=1)]


UserPart = Annotated[TextPart | ImageUrlItem | VideoUrlItem | VideoFramesPart, Field(discriminator="type")]


class SystemMessage(Strict):
    role: Literal["system", "developer"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]


class UserMessage(Strict):
    role: Literal["user"]
    content: str | Annotated[list[UserPart], Field(min_length=1)]


class AssistantMessage(Strict):
    role: Literal["assistant"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]


Message = Annotated[SystemMessage | UserMessage | AssistantMessage, Field(discriminator="role")]


class StreamOptions(Strict):
    include_usage: bool = False


class TextFormat(Strict):
    type: Literal["text"]


class JsonObjectFormat(Strict):
    type: Literal["json_object"] = Field(description="The answer is a JSON object (guaranteed by the decoder)")


class JsonSchema(Strict):
    name: str = Field(max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema", description="The JSON schema the answer is valid against")
    strict: bool | None = None


class JsonSchemaFormat(Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


def parameter(name: str) -> Any:
    """A pydantic field for the generation parameter ``name``, with its range and meaning from client.parameters."""
    spec = PARAMETERS_BY_NAME.get(name) or VIDEO_PARAMETERS_BY_NAME.get(name) or PIXEL_PARAMETERS_BY_NAME[name]
    bounds: dict[str, float] = {}
    if spec.minimum is not None:
        bounds["gt" if spec.exclusive_minimum else "ge"] = spec.minimum
    if spec.maximum is not None:
        bounds["le"] = spec.maximum
    return Field(None, description=spec.description, **bounds)


class ProcessorKwargs(Strict):
    """vLLM's ``mm_processor_kwargs`` (arguments of the checkpoint's processor), as far as this server takes them:
    the pixel budget of a Qwen2-VL-family model's images and video frames. Other keys are refused, not ignored."""

    min_pixels: int | None = parameter("min_pixels")
    max_pixels: int | None = parameter("max_pixels")


class ChatCompletionRequest(Strict):
    model: str | None = Field(
        None, description="A served chat model's name (`GET /v1/models`); default: the gateway's default chat model"
    )
    messages: Annotated[list[Message], Field(min_length=1)]
    max_tokens: int | None = parameter("max_tokens")
    max_completion_tokens: int | None = parameter("max_tokens")
    temperature: float | None = parameter("temperature")
    top_p: float | None = parameter("top_p")
    seed: int | None = parameter("seed")
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1, description="Choices; at most the gateway's --max-choices")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = parameter("top_logprobs")
    frequency_penalty: float | None = parameter("frequency_penalty")
    presence_penalty: float | None = parameter("presence_penalty")
    response_format: ResponseFormat | None = None
    # What vLLM-backed servers take beyond OpenAI's fields (benchmark clients send ignore_eos and min_tokens).
    top_k: int | None = parameter("top_k")
    min_p: float | None = parameter("min_p")
    repetition_penalty: float | None = parameter("repetition_penalty")
    min_tokens: int | None = parameter("min_tokens")
    ignore_eos: bool | None = parameter("ignore_eos")
    # Sampling of the request's video_url clips (client.video_parameters; README, "Video").
    video_fps: float | None = parameter("video_fps")
    max_frames: int | None = parameter("max_frames")
    # The resize of images and video frames, for models whose preprocessing has a pixel budget (the Qwen2-VL family):
    # top-level, or in mm_processor_kwargs as vLLM's OpenAI server takes them (client.pixel_parameters).
    min_pixels: int | None = parameter("min_pixels")
    max_pixels: int | None = parameter("max_pixels")
    mm_processor_kwargs: ProcessorKwargs | None = Field(
        None, description="vLLM's processor arguments: min_pixels and max_pixels (as the top-level fields)"
    )

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop: str | list[str] | None) -> str | list[str] | None:
        strings = [stop] if isinstance(stop, str) else stop or []
        if len(strings) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings, got {len(strings)}")
        for text in strings:
            if not text or len(text.encode()) > MAX_STOP_BYTES:
                raise ValueError(f"each stop string must be 1 to {MAX_STOP_BYTES} bytes")
        return stop

    @property
    def stop_strings(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def choices(self) -> int:
        return self.n or 1


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: None = None


class AssistantReply(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


FinishReason = Literal["stop", "length"]


class Choice(BaseModel):
    index: int
    message: AssistantReply
    logprobs: ChoiceLogprobs | None
    finish_reason: FinishReason


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    video_frames: list[int] | None = Field(
        None, description="Frames the model saw of each video_url clip, in order (absent without videos)"
    )


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
