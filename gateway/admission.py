"""Who may call and how many at once, decided from the headers alone (before any body is read).

``Authentication``: with API keys configured, every route but the open ones needs ``Authorization: Bearer <key>``
(401 otherwise). ``Concurrency``: the inference routes admit at most ``max_concurrency`` requests in all and
``max_concurrency_per_key`` per caller (the API key, or the client address without keys); excess gets 429 with
``Retry-After`` at once. A streamed response holds its slot until its last byte.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import ApiError
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings

OPEN_PATHS = frozenset({"/health", "/ready", "/"})  # probes, and the playground page (it holds no data)


def bearer_token(scope: Scope) -> str | None:
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Authentication:
    def __init__(self, app: ASGIApp, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Digests of equal length, compared in constant time: neither a key's length nor its bytes leak.
        self.digests = [hashlib.sha256(key.encode()).digest() for key in settings.api_keys]

    def allowed(self, token: str | None) -> bool:
        if token is None:
            return False
        digest = hashlib.sha256(token.encode()).digest()
        return any(hmac.compare_digest(digest, known) for known in self.digests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.digests or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if not self.allowed(bearer_token(scope)):
            self.metrics.rejected.labels("unauthorized").inc()
            error = ApiError(
                401,
                "a valid API key is required: Authorization: Bearer <key>",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
            await error.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Concurrency:
    def __init__(
        self, app: ASGIApp, settings: GatewaySettings, metrics: GatewayMetrics, paths: Collection[str]
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.paths = frozenset(paths)
        self.total = 0
        self.per_caller: Counter[str] = Counter()

    @staticmethod
    def caller(scope: Scope) -> str:
        token = bearer_token(scope)
        if token is not None:
            return "key:" + hashlib.sha256(token.encode()).hexdigest()
        client = scope.get("client")
        return f"address:{client[0] if client else 'unknown'}"

    def refusal(self, caller: str) -> ApiError | None:
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        if self.total >= self.settings.max_concurrency:
            limit = self.settings.max_concurrency
            return ApiError(
                429,
                f"the gateway is at its limit of {limit} requests in flight",
                code="too_many_requests",
                headers=retry,
            )
        if self.per_caller[caller] >= self.settings.max_concurrency_per_key:
            limit = self.settings.max_concurrency_per_key
            return ApiError(
                429, f"at most {limit} requests in flight per API key", code="too_many_requests", headers=retry
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        caller = self.caller(scope)
        refused = self.refusal(caller)
        if refused is not None:
            self.metrics.rejected.labels("concurrency").inc()
            await refused.response()(scope, receive, send)
            return
        self.total += 1  # one event loop: no lock needed between the check and the increments
        self.per_caller[caller] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.total -= 1
            self.per_caller[caller] -= 1
            if not self.per_caller[caller]:
                del self.per_caller[caller]
