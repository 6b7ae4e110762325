"""``create_app(settings)``: the FastAPI application with its middleware, from the outside in: metrics (every
response), authentication, concurrency (inference routes), body limits (size, encoding, JSON depth), routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway import handlers
from gateway.admission import OPEN_PATHS, Authentication, Concurrency
from gateway.body_limits import BodyLimits
from gateway.metrics import GatewayMetrics, MetricsMiddleware
from gateway.routes import openai, rest, service
from gateway.settings import GatewaySettings
from gateway.state import GatewayState

INFERENCE_PATHS = ("/v1/chat/completions", "/v1/embeddings", "/analyze-image", "/document-analysis", "/v1/classify")


def create_app(settings: GatewaySettings) -> FastAPI:
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.gateway = GatewayState.open(settings, metrics)
        try:
            yield
        finally:
            await app.state.gateway.close()

    app = FastAPI(
        title="vlm-gateway",
        version="0.1.0",
        summary="OpenAI-compatible chat completions and embeddings, REST image routes and a playground, "
        "in front of Triton Inference Server",
        lifespan=lifespan,
    )
    routers = (openai.router, rest.router, service.router)
    for router in routers:
        app.include_router(router)
    app.state.metrics_registry = metrics.registry  # for a separate metrics port
    handlers.install(app)
    app.openapi = lambda: _openapi(app, settings.auth_required)  # type: ignore[method-assign]
    routes = {route.path for router in routers for route in router.routes}  # type: ignore[attr-defined]
    routes |= {url for url in (app.openapi_url, app.docs_url, app.redoc_url) if url}
    app.add_middleware(BodyLimits, settings=settings, metrics=metrics)
    app.add_middleware(Concurrency, settings=settings, metrics=metrics, paths=INFERENCE_PATHS)
    app.add_middleware(Authentication, settings=settings, metrics=metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=routes)
    return app


def _openapi(app: FastAPI, auth_required: bool) -> dict[str, Any]:
    """FastAPI's schema, without its 422 validation answers (this gateway answers those with 400 and the
    OpenAI error object), and with the bearer key on every route but the open ones when keys are set."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        for route, path in schema["paths"].items():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
                if auth_required and route not in OPEN_PATHS:
                    operation["security"] = [{"bearer": []}]
        if auth_required:
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
