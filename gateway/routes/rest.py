"""The REST routes of the original design, as multipart uploads: ``/analyze-image``, ``/document-analysis`` (on a
chat model) and ``/v1/classify`` (zero-shot, on an embedding model); each takes the served model's name in an
optional ``model`` field (default: the kind's default model, gateway/catalog.py)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form

from client import Completion, VLMError, prompts
from client.ranking import classification
from gateway.errors import ApiError, from_vlm_error, invalid
from gateway.schemas.common import error_responses
from gateway.schemas.rest import (
    AnalyzeImageForm,
    AnalyzeImageResponse,
    ClassifyForm,
    ClassifyResponse,
    DocumentAnalysisForm,
    DocumentAnalysisResponse,
    LabelProbability,
)
from gateway.state import GatewayState, gateway_state

router = APIRouter(tags=["REST"])
State = Annotated[GatewayState, Depends(gateway_state)]
ERRORS = error_responses(400, 401, 404, 408, 413, 415, 429, 500, 502, 503, 504)  # 404: an unknown model
DESCRIBE_STYLE = {"caption": "descriptive", "describe": "technical"}


def _upload_fields(name: str, index: int | None) -> str | None:
    return "file" if name == "image" else name


def _upstream(error: VLMError, state: GatewayState) -> ApiError:
    return from_vlm_error(error, state.settings.retry_after_s, _upload_fields)


def _length(max_tokens: int | None) -> dict[str, int]:
    return {} if max_tokens is None else {"max_tokens": max_tokens}


async def _image(form_file: object, state: GatewayState) -> bytes:
    data = await form_file.read(state.settings.max_image_bytes + 1)  # type: ignore[attr-defined]
    return state.images.upload(data, "file")


@router.post("/analyze-image", response_model=AnalyzeImageResponse, responses=ERRORS)
async def analyze_image(form: Annotated[AnalyzeImageForm, Form()], state: State) -> AnalyzeImageResponse:
    query = (form.query or "").strip() or None
    if form.task == "vqa" and query is None:
        raise invalid("query", "required for the vqa task (the question to answer)")
    if form.task != "vqa" and query is not None:
        raise invalid("query", f"only the vqa task takes a query, not {form.task}")
    _, vlm = await state.route(form.model, "chat")
    image = await _image(form.file, state)
    try:
        if query is not None:
            completion: Completion = await vlm.ask(image, query, **_length(form.max_tokens))
        else:
            completion = await vlm.caption(image, DESCRIBE_STYLE[form.task], **_length(form.max_tokens))
    except VLMError as error:
        raise _upstream(error, state) from None
    return AnalyzeImageResponse(
        task=form.task, query=query, result=completion.text.strip(), confidence=completion.confidence
    )


@router.post("/document-analysis", response_model=DocumentAnalysisResponse, responses=ERRORS)
async def document_analysis(form: Annotated[DocumentAnalysisForm, Form()], state: State) -> DocumentAnalysisResponse:
    started = time.perf_counter()
    kind = form.analysis_type.strip()
    if not kind:
        raise invalid("analysis_type", f"give one of {', '.join(prompts.DOCUMENT_KINDS)} or a question")
    _, vlm = await state.route(form.model, "chat")
    image = await _image(form.file, state)
    try:
        if kind in prompts.DOCUMENT_KINDS:
            completion = await vlm.analyze_document(image, kind, **_length(form.max_tokens))
        else:
            completion = await vlm.analyze_document(image, None, query=kind, **_length(form.max_tokens))
    except VLMError as error:
        raise _upstream(error, state) from None
    return DocumentAnalysisResponse(
        analysis_type=kind,
        extracted_info=completion.text.strip(),
        processing_time=round(time.perf_counter() - started, 4),
    )


@router.post("/v1/classify", response_model=ClassifyResponse, responses=ERRORS)
async def classify(form: Annotated[ClassifyForm, Form()], state: State) -> ClassifyResponse:
    labels = [label.strip() for value in form.labels for label in value.split(",")]
    if not all(labels) or len(set(labels)) != len(labels):
        raise invalid("labels", "give distinct, non-empty labels")
    if len(labels) > state.settings.max_embedding_inputs:
        raise invalid("labels", f"at most {state.settings.max_embedding_inputs} labels, got {len(labels)}")
    # The template is filled by replacement, never str.format: a client's format string could reach attributes.
    rest = form.template.replace("{}", "", 1)
    if "{}" not in form.template or "{" in rest or "}" in rest:
        raise invalid("template", "must hold {} exactly once (where each label goes) and no other braces")
    if (form.file is None) == (form.image_url is None):
        raise invalid("file", "give either file or image_url")
    served, vlm = await state.route(form.model, "embedding")
    image = (
        await _image(form.file, state)
        if form.file is not None
        else await state.images.load(form.image_url or "", "image_url")
    )
    texts = [form.template.replace("{}", label) for label in labels]
    try:
        probs = (await vlm.rank_texts([image], texts))["probs"][0]
    except VLMError as error:
        fields = {"text": "labels", "image": "image_url" if form.image_url else "file"}
        raise from_vlm_error(error, state.settings.retry_after_s, lambda name, index: fields.get(name)) from None
    predictions = [LabelProbability(label=label, probability=p) for label, p in classification(probs, labels).items()]
    return ClassifyResponse(model=served.name, predictions=predictions)
