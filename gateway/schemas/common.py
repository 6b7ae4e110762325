"""Shared pieces: strict request models, the error object, image URL items."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """Request bodies refuse unknown parameters: nothing a client sends is silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ImageUrl(Strict):
    url: str = Field(description="A base64 `data:` URL, or an http(s) URL on a host the operator allows")
    detail: Literal["auto"] = Field(
        "auto", description="Only `auto`: the checkpoint's image processor fixes the resolution"
    )


class ImageUrlItem(Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


ERROR_STATUSES = (400, 401, 404, 408, 413, 415, 429, 500, 502, 503, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {status: {"model": ErrorResponse, "description": "an error"} for status in statuses or ERROR_STATUSES}
