"""The request body, bounded before any route parses it: size (the Content-Length first, then the bytes as they
arrive, 413), time to arrive (408), Content-Encoding (gzip is inflated with the size cap applied to what it
inflates to, so a small bomb is refused after ``max_body_bytes``; anything else is 415), and for JSON bodies the
nesting depth (400). The route then reads the checked body as if it came from the client."""

from __future__ import annotations

import asyncio
import zlib

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ApiError
from gateway.json_depth import json_depth
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings

WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class ClientGone(Exception):
    pass


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is over the limit of {limit} bytes", code="request_too_large")


class Inflater:
    """gzip, one member, at most ``limit`` bytes out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self.size = 0

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        try:
            while data:
                if self.inflater.eof:
                    raise ApiError(400, "the gzip body holds data after its end", code="invalid_encoding")
                piece = self.inflater.decompress(data, self.limit - self.size + 1)
                self.size += len(piece)
                if self.size > self.limit:
                    raise _too_large(self.limit)
                out += piece
                data = self.inflater.unconsumed_tail or self.inflater.unused_data
        except zlib.error:
            raise ApiError(400, "the body is not valid gzip", code="invalid_encoding") from None
        return bytes(out)

    def finish(self) -> None:
        if not self.inflater.eof:
            raise ApiError(400, "the gzip body ends before its end", code="invalid_encoding")


class BodyLimits:
    def __init__(self, app: ASGIApp, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            inflater = self.encoding(headers)
            self.check_length(headers)
            async with asyncio.timeout(self.settings.body_timeout_s):
                body = await self.read(receive, inflater)
            if _is_json(headers):
                self.check_depth(body)
        except ClientGone:
            return
        except TimeoutError:
            self.metrics.rejected.labels("body_timeout").inc()
            limit = self.settings.body_timeout_s
            await ApiError(408, f"the request body did not arrive within {limit:g} s", code="timeout").response()(
                scope, receive, send
            )
            return
        except ApiError as error:
            self.metrics.rejected.labels(error.code or "body").inc()
            await error.response()(scope, receive, send)
            return
        await self.app(_replaced_headers(scope, len(body)), _replay(body, receive), send)

    def encoding(self, headers: Headers) -> Inflater | None:
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return None
        if encoding == "gzip":
            return Inflater(self.settings.max_body_bytes)
        raise ApiError(
            415, f"Content-Encoding {encoding} is not accepted (send identity or gzip)", code="unsupported_encoding"
        )

    def check_length(self, headers: Headers) -> None:
        declared = headers.get("content-length")
        if declared is None:
            return
        if not declared.strip().isdigit():
            raise ApiError(400, "the Content-Length header is not a number", code="invalid_header")
        if int(declared) > self.settings.max_body_bytes:
            raise _too_large(self.settings.max_body_bytes)

    async def read(self, receive: Receive, inflater: Inflater | None) -> bytes:
        limit = self.settings.max_body_bytes
        body, received = bytearray(), 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:  # counted as it arrives: a missing or false Content-Length changes nothing
                raise _too_large(limit)
            body += inflater.feed(chunk) if inflater else chunk
            if not message.get("more_body", False):
                break
        if inflater is not None:
            inflater.finish()
        return bytes(body)

    def check_depth(self, body: bytes) -> None:
        depth = json_depth(body)
        if depth > self.settings.max_json_depth:
            raise ApiError(
                400,
                f"the JSON body nests {depth} levels deep, over the limit of {self.settings.max_json_depth}",
                code="json_too_deep",
            )


def _is_json(headers: Headers) -> bool:
    media_type = headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _replaced_headers(scope: Scope, length: int) -> Scope:
    """The route sees the body as it now is: inflated, with its true length."""
    kept = [
        (k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length", b"transfer-encoding")
    ]
    return {**scope, "headers": [*kept, (b"content-length", str(length).encode())]}


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body, only the disconnect is left to hear

    return replayed
