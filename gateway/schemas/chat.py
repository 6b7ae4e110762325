"""``POST /v1/chat/completions``: the OpenAI request, the response and the stream's chunks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from gateway.schemas.common import ImageUrlItem, Strict

MAX_STOP_STRINGS = 4  # OpenAI's limit
MAX_STOP_BYTES = 256  # the decoder's limit per stop string
MAX_SEED = 2**63 - 1


class TextPart(Strict):
    type: Literal["text"]
    text: str


UserPart = Annotated[TextPart | ImageUrlItem, Field(discriminator="type")]


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


class ResponseFormat(Strict):
    type: Literal["text"] = Field(description="Only `text`: the decoder does not constrain its output")


def _only_zero(value: float | None) -> float | None:
    if value not in (None, 0):
        raise ValueError("this service supports only 0 (no penalty)")
    return value


class ChatCompletionRequest(Strict):
    model: str
    messages: Annotated[list[Message], Field(min_length=1)]
    max_tokens: int | None = Field(None, ge=1, description="Default: the server's (256, cut to the context)")
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2, description="Default: the server's, 0 (greedy)")
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1, description="Choices; at most the gateway's --max-choices")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=0, description="Only 0: the decoder keeps no alternatives")
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: ResponseFormat | None = None

    _penalties = field_validator("frequency_penalty", "presence_penalty")(_only_zero)

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
