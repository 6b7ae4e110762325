"""Prometheus metrics of the gateway, and the ASGI middleware that records every request.

``vlm_gateway_requests_total{route,method,status}``, ``vlm_gateway_request_duration_seconds{route}`` (a stream
counts until its last byte), ``vlm_gateway_in_flight_requests{route}``, ``vlm_gateway_rejected_requests_total
{reason}`` (refused before reaching a route: size, depth, encoding, authentication, concurrency) and
``vlm_gateway_time_to_first_token_seconds`` (streamed chat completions) and ``vlm_gateway_replica_retries_total``
(Triton calls retried on another replica after theirs died or was not ready).
"""

from __future__ import annotations

import time
from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    """Its own registry, so several gateways in one process (tests) do not share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vlm_gateway_requests", "HTTP requests answered", ("route", "method", "status"), registry=self.registry
        )
        self.duration = Histogram(
            "vlm_gateway_request_duration_seconds",
            "Time from a request's arrival to its response's last byte",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "vlm_gateway_in_flight_requests", "Requests being answered", ("route",), registry=self.registry
        )
        self.rejected = Counter(
            "vlm_gateway_rejected_requests",
            "Requests refused before a route ran, by reason",
            ("reason",),
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "vlm_gateway_time_to_first_token_seconds",
            "Streamed chat completions: time from the request to the first text",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.replica_retries = Counter(
            "vlm_gateway_replica_retries",
            "Triton calls retried on another replica because theirs died or was not ready",
            registry=self.registry,
        )


class MetricsMiddleware:
    """Outermost: sees every response, the rejections of the other middleware included."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, routes: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in self.routes else "unmatched"
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_flight = self.metrics.in_flight.labels(route)
        in_flight.inc()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            in_flight.dec()
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.duration.labels(route).observe(time.perf_counter() - started)
