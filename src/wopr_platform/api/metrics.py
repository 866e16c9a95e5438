"""Time every API request into the platform's figures (core/metrics.py), by the route's template.

The template (`/fleet/bots/{bot_id}`), not the path, names a series: one series per route, never one per bot. A
path no route matches counts as `unmatched`."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wopr_platform.core.metrics import PlatformMetrics

UNMATCHED = "unmatched"


class RequestMetrics:
    """ASGI middleware: observes each HTTP request's duration (to the last byte sent) by method, route, status."""

    def __init__(self, app: ASGIApp, metrics: PlatformMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before it answers

        async def noting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, noting_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self._metrics.requests.labels(scope["method"], template, str(status)).observe(time.perf_counter() - started)
