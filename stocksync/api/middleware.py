"""Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

from __future__ import annotations

import json
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stocksync.metrics import Metrics, method_label
from stocksync.store.base import REQUEST_ID

METRIC_CHILDREN_MAX = 4096  # label sets of the HTTP metrics kept bound (routes x statuses)


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Refuses request bodies over ``max_bytes`` with 413 before they reach a handler.

    ``path_limits`` gives other limits by path prefix (vendor webhooks carry whole orders).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = path_limits or {}

    def limit(self, path: str) -> int:
        for prefix, limit in self.path_limits.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit(scope["path"]) if self.path_limits else self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > max_bytes:
                    await self._refuse(scope, send, max_bytes)
                    return
                break
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await self._refuse(scope, send, max_bytes)

    async def _refuse(self, scope: Scope, send: Send, max_bytes: int) -> None:
        problem = {
            "type": "/problems/payload_too_large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"bodies are limited to {max_bytes} bytes; nothing was changed",
            "code": "payload_too_large",
            "instance": scope.get("path"),
        }
        if request_id := REQUEST_ID.get():
            problem["request_id"] = request_id
        body = json.dumps(problem).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class RequestMetrics:
    """Counts requests and their latency by method, route template and status.

    Every label is bounded whatever clients send: methods outside the known few are ``other``,
    a path no route matches is ``unmatched`` (never the path itself), and statuses are the
    app's own."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The labelled children by (method, route, status), made once each: labels() per
        # request was a measurable share of a reservation's CPU. The labels are bounded (see
        # above); the cache is bounded too, past it children are looked up as before.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def children(self, method: str, template: str, status: int) -> tuple[Any, Any]:
        """The (request counter, latency histogram) children of one label set."""
        key = (method, template, status)
        found = self._children.get(key)
        if found is None:
            found = (
                self.metrics.http_requests.labels(method, template, str(status)),
                self.metrics.http_latency.labels(method, template),
            )
            if len(self._children) < METRIC_CHILDREN_MAX:
                self._children[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or "unmatched"
            requests, latency = self.children(method_label(scope["method"]), template, status)
            requests.inc()
            latency.observe(perf_counter() - started)
