"""``POST /v1/embeddings``: texts through a dual encoder's text tower, ``image_url`` items through its vision tower."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from gateway.schemas.common import ImageUrlItem, Strict

EmbeddingInput = str | ImageUrlItem


class EmbeddingRequest(Strict):
    model: str | None = Field(
        None,
        description="A served embedding model's name (`GET /v1/models`); default: the gateway's default one",
    )
    input: str | Annotated[list[EmbeddingInput], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, description="Only the model's own dimension")

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, int | list) for v in value):
            raise ValueError("token-id arrays are not supported: send text, or image_url items")
        return value

    @property
    def items(self) -> list[EmbeddingInput]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or little-endian float32 bytes in base64")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int = Field(description="Tokens the texts were read as (start and end included); images count 0")
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
