"""Exception handlers: every error the app raises, FastAPI's validation errors and unknown routes answer with
the OpenAI error object. Validation errors are 400s naming the parameter, never 422s or 500s."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from gateway.errors import ApiError

log = logging.getLogger("vlm_gateway")

# pydantic puts union members and validator kinds into an error's location; they are not parameter names.
_NOT_A_NAME = ("[", "]", "function-", "tagged-union", "json-or-python")
_TYPE_NAMES = {"str", "int", "float", "bool", "list", "dict", "none", "nullable", "literal", "union"}
_ROLE_TAGS = {"system", "developer", "user", "assistant"}


def param_name(location: Sequence[Any]) -> str | None:
    """``("body", "messages", 0, "content", 1, "image_url", "image_url", "url")`` ->
    ``messages[0].content[1].image_url.url`` (a tagged union repeats its tag, here ``image_url``)."""
    parts: list[str | int] = []
    for item in location[1:] if location and location[0] in ("body", "query", "path", "header") else location:
        if isinstance(item, int):
            parts.append(item)
        elif any(mark in item for mark in _NOT_A_NAME) or item in _TYPE_NAMES or item[:1].isupper():
            continue  # union members: types, validator kinds, model class names
        elif item in _ROLE_TAGS and parts and isinstance(parts[-1], int):
            continue  # the role a message was validated as
        elif not parts or parts[-1] != item:
            parts.append(item)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or None


def _message(error: dict[str, Any], param: str | None) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "this service does not support this parameter"
    if kind == "missing":
        return "required"
    if kind in ("json_invalid", "json_type"):
        return "the body is not valid JSON"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def validation_error(error: RequestValidationError) -> ApiError:
    errors = list(error.errors())
    # A union reports one error per member it tried; the deepest one is about what the client meant.
    first = max(errors, key=lambda e: len(e.get("loc", ())), default={})
    kind = first.get("type", "")
    if kind in ("json_invalid", "json_type") or (kind == "model_attributes_type" and len(first.get("loc", ())) <= 1):
        return ApiError(400, "the body is not valid JSON (a JSON object is expected)", code="invalid_json")
    param = param_name(first.get("loc", ()))
    message = _message(first, param)
    return ApiError(400, f"{param}: {message}" if param else message, param=param, code="invalid_value")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> Response:
        return error.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        return validation_error(error).response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 404:
            return ApiError(404, f"no route {request.url.path}", code="unknown_url").response()
        if error.status_code == 405:
            return ApiError(
                405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed"
            ).response()
        return ApiError(error.status_code, str(error.detail), code="http_error").response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        return ApiError(500, "internal error in the gateway", code="internal_error").response()
