"""The REST routes of the original design (multipart uploads), and the service routes' answers."""

from __future__ import annotations

from typing import Literal

from fastapi import UploadFile
from pydantic import BaseModel, Field

from gateway.schemas.common import Strict

AnalyzeTask = Literal["vqa", "caption", "describe"]
MaxTokens = Field(None, ge=1, description="Default: the server's")
ChatModel = Field(None, description="A served chat model's name (GET /v1/models); default: the gateway's default one")
EmbeddingModel = Field(
    None, description="A served embedding model's name (GET /v1/models); default: the gateway's default one"
)


class AnalyzeImageForm(Strict):
    file: UploadFile
    task: AnalyzeTask = Field("vqa", description="vqa answers `query`; caption is short, describe detailed")
    query: str | None = Field(None, description="The question (vqa only)")
    max_tokens: int | None = MaxTokens
    model: str | None = ChatModel


class DocumentAnalysisForm(Strict):
    file: UploadFile
    analysis_type: str = Field(
        "summary", description="summary, extract_tables, key_points, numbers, or a free question about the document"
    )
    max_tokens: int | None = MaxTokens
    model: str | None = ChatModel


class ClassifyForm(Strict):
    file: UploadFile | None = Field(None, description="The image; or give image_url")
    image_url: str | None = Field(None, description="A base64 data: URL or an allowed http(s) URL")
    labels: list[str] = Field(description="Candidate labels: repeat the field, or one comma-separated value")
    template: str = Field("a photo of a {}", description="Each label is put into this text at {}")
    model: str | None = EmbeddingModel


class AnalyzeImageResponse(BaseModel):
    task: AnalyzeTask
    query: str | None
    result: str
    confidence: float = Field(description="Mean probability of the answer's tokens")


class DocumentAnalysisResponse(BaseModel):
    analysis_type: str
    extracted_info: str
    processing_time: float = Field(description="Seconds the analysis took")


class LabelProbability(BaseModel):
    label: str
    probability: float


class ClassifyResponse(BaseModel):
    model: str
    predictions: list[LabelProbability] = Field(description="Zero-shot probabilities, most likely first")


class ModelCard(BaseModel):
    id: str = Field(description="The served model's name: what a request's `model` field names")
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    kind: Literal["chat", "embedding"] = Field(
        description="chat: /v1/chat/completions, /analyze-image, /document-analysis; "
        "embedding: /v1/embeddings, /v1/classify"
    )
    family: str = Field(description="The family it was exported as (clip, llava, siglip, ...)")
    precision: str | None = Field(
        default=None,
        description="What its exported encoders run at (fp32, int8, ...; `mixed` when they differ), as the "
        "repository records it; null where no encoder is exported (vLLM encodes the images)",
    )
    encoder_precisions: dict[str, str] = Field(
        default_factory=dict, description="Each exported encoder it runs (a Triton model) -> its precision"
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description="Each probe's outcome: `ok` or why not")
