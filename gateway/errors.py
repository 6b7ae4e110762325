"""Every failure as the OpenAI error object ``{"error": {"message", "type", "param", "code"}}`` with its status.

Errors from Triton arrive as the client's typed errors and map to statuses here: invalid input 400, not ready and
unavailable 503, busy 429 (both with ``Retry-After``), timeout 504, anything else 502. Server-side failures get a
fixed message: Triton's own text can name internal addresses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.responses import JSONResponse

from client.errors import (
    InvalidInputError,
    ModelNotReadyError,
    RequestTimeoutError,
    ServerBusyError,
    ServerUnavailableError,
    VLMError,
)

log = logging.getLogger("vlm_gateway")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return ERROR_TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def invalid(param: str | None, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 whose message starts with the parameter it is about."""
    return ApiError(400, f"{param}: {message}" if param else message, param=param, code=code)


# Triton's field (and index) -> the public parameter; a route passes its own table. The client's InvalidInputError
# brings them as data (field, index, and the member inside that element, such as ".content[1].text").
FieldNames = Callable[[str, int | None], str | None]


def from_vlm_error(error: VLMError, retry_after_s: int, field_names: FieldNames | None = None) -> ApiError:
    retry = {"Retry-After": str(retry_after_s)}
    if isinstance(error, InvalidInputError):
        base = None
        if error.field is not None and field_names is not None:
            base = field_names(error.field, error.index)
        if base is None:
            return ApiError(400, str(error), code="invalid_value")
        param = f"{base}{error.member}"
        return ApiError(400, f"{param}: {error.reason}", param=param, code="invalid_value")
    if isinstance(error, ServerBusyError):
        return ApiError(429, "the model server is at capacity; retry later", code="server_busy", headers=retry)
    if isinstance(error, ModelNotReadyError):
        return ApiError(503, "the model is not ready; retry later", code="model_not_ready", headers=retry)
    if isinstance(error, ServerUnavailableError):
        return ApiError(503, "the model server is unavailable; retry later", code="server_unavailable", headers=retry)
    if isinstance(error, RequestTimeoutError):
        return ApiError(504, "the model server did not answer in time", code="timeout")
    log.warning("model server failure: %s", error)
    return ApiError(502, "the model server failed to answer this request", code="upstream_error")
