"""Prometheus request metrics for the API process (its logs: ``models.logs``)."""

from __future__ import annotations

import time

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def install_metrics(app: FastAPI) -> CollectorRegistry:
    """Count and time requests by route template (not raw path, to bound label cardinality)."""
    registry = CollectorRegistry()
    requests = Counter(
        "tuneforge_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "tuneforge_http_request_seconds", "HTTP request latency", ["method", "route"], registry=registry
    )
    app.add_middleware(_RequestMetrics, requests=requests, latency=latency)
    return registry


class _RequestMetrics:
    """Pure ASGI middleware: BaseHTTPMiddleware would run every request through an extra task."""

    def __init__(self, app: ASGIApp, *, requests: Counter, latency: Histogram) -> None:
        self.app, self.requests, self.latency = app, requests, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]  # what the client sees if the app raises before starting a response

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], route, str(status[0])).inc()
            self.latency.labels(scope["method"], route).observe(time.perf_counter() - started)
