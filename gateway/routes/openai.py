"""``/v1/models``, ``/v1/chat/completions`` and ``/v1/embeddings``, as the OpenAI API has them: the models are the
checkpoints Triton serves, by name, and each request goes to the one its ``model`` field names (gateway/catalog.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from gateway import chat
from gateway.conversation import (
    check_model_inputs,
    choice_parameters,
    conversation,
    generation_parameters,
    triton_fields,
)
from gateway.schemas.chat import ChatCompletion, ChatCompletionRequest
from gateway.schemas.common import error_responses
from gateway.schemas.embeddings import EmbeddingRequest, EmbeddingResponse
from gateway.schemas.rest import ModelCard, ModelList
from gateway.sse import EventStream
from gateway.state import GatewayState, gateway_state

router = APIRouter(tags=["OpenAI-compatible"])
State = Annotated[GatewayState, Depends(gateway_state)]
STARTED = int(time.time())

CHAT_RESPONSES = {
    **error_responses(400, 401, 404, 408, 413, 415, 429, 500, 502, 503, 504),
    200: {
        "description": "A chat completion, or with `stream: true` server-sent `chat.completion.chunk` events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
}


@router.get("/v1/models", response_model=ModelList, responses=error_responses(401, 500, 503, 504))
async def list_models(state: State) -> ModelList:
    catalog = await state.catalog.get()
    cards = [
        ModelCard(
            id=name,
            created=STARTED,
            owned_by="triton-vlm",
            kind=model.kind,
            family=model.family,
            precision=model.precision,
            encoder_precisions=dict(model.precisions),
        )
        for name, model in catalog.models.items()
    ]
    return ModelList(data=cards)


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=CHAT_RESPONSES)
async def chat_completions(body: ChatCompletionRequest, state: State) -> Response | ChatCompletion:
    settings = state.settings
    served, vlm = await state.route(body.model, "chat")
    asked = conversation(body, settings.max_images)
    check_model_inputs(body, served)
    parameters = generation_parameters(body, settings.max_choices)
    images = await asyncio.gather(*(state.images.load(url, param) for url, param in asked.image_urls))
    videos = await asyncio.gather(*(state.videos.load(url, param) for url, param in asked.video_urls))
    if videos:
        parameters["videos"] = list(videos)  # without videos, video_fps and max_frames are not sent
    job = chat.ChatJob.new(
        model=served.name,
        messages=asked.messages,
        images=list(images),
        parameters=[choice_parameters(parameters, k) for k in range(body.choices)],
        logprobs=bool(body.logprobs),
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
        fields=triton_fields(body, asked),
        retry_after_s=settings.retry_after_s,
    )
    if not body.stream:
        return await chat.complete(vlm, job)
    started = time.perf_counter()

    def first_token() -> None:
        state.metrics.time_to_first_token.observe(time.perf_counter() - started)

    return EventStream(chat.stream(vlm, job, on_first_item=first_token))


@router.post(
    "/v1/embeddings",
    response_model=EmbeddingResponse,
    responses=error_responses(400, 401, 404, 408, 413, 415, 429, 500, 502, 503, 504),
)
async def embeddings(body: EmbeddingRequest, state: State) -> EmbeddingResponse:
    served, vlm = await state.route(body.model, "embedding")
    return await state.embeddings.embed(body, vlm, served.name)
