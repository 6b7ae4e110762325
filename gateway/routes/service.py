"""``/health`` (the process is up), ``/ready`` (Triton and its models answer), ``/metrics`` and the playground."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import HTMLResponse, JSONResponse, Response

from client import prompts
from gateway.schemas.common import error_responses
from gateway.schemas.rest import Health, Readiness
from gateway.state import GatewayState, gateway_state
from gateway.triton import is_ready

router = APIRouter(tags=["service"])
State = Annotated[GatewayState, Depends(gateway_state)]


@router.get("/health", response_model=Health)
async def health() -> Health:
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness, "description": "not ready"}})
async def ready(state: State) -> Response:
    checks = await state.readiness.check()
    body = Readiness(status="ready" if is_ready(checks) else "not ready", checks=checks)
    if body.status == "ready":
        return JSONResponse(body.model_dump())
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": str(state.settings.retry_after_s)})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}, **error_responses(401)},
)
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@cache
def playground_page() -> str:
    """The page, with the client's task instructions it sends (so it asks as vlm-client does); it lists the served
    models itself from ``/v1/models`` (with the API key the user types) and offers each one's tasks."""
    page = resources.files("gateway").joinpath("static/playground.html").read_text()
    config = {
        "captionPrompt": prompts.CAPTION_STYLES["descriptive"],
        "documentKinds": list(prompts.DOCUMENT_KINDS),
    }
    return page.replace("/*CONFIG*/{}", json.dumps(config).replace("</", "<\\/"))


@router.get(
    "/", response_class=HTMLResponse, responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}}
)
async def playground() -> HTMLResponse:
    return HTMLResponse(playground_page())
