"""The lean path: the hot routes served without FastAPI's per-request machinery.

FastAPI spends most of a reservation's CPU on itself: the router tries each route's regex, the
dependency tree is solved per request (the bearer key, the scope, a ``Response``), the returned
model is validated again and every layer wraps ``send``. :class:`LeanLane` sits inside the
body-size limit, the metrics and the request log, and answers the routes given to it directly:
one dict lookup by method and path shape, the bearer key verified from the in-memory key
snapshot, the body decoded by the same strict decoder and validated by a ``TypeAdapter`` of the
same pydantic model the route declares, the answer serialised once. Everything else (and a
path a lean route does not match) goes on to FastAPI unchanged.

What clients see does not change: the routes stay declared on their routers, so the OpenAPI
document is generated from the same models, and each lean handler follows FastAPI's order
(body decoded, then the key, then path, query and body validated together) with the same
problem+json answers (``tests/e2e/test_lean_path.py`` compares both paths request by request).
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from stocksync.api.deps import Services, authenticate
from stocksync.api.problems import problem_response_for
from stocksync.api.strict_json import loads_strict
from stocksync.auth.principal import Principal
from stocksync.domain.errors import StockSyncError

JSON_HEADERS = [(b"content-type", b"application/json")]
REPLAYED_HEADER = (b"idempotent-replayed", b"true")
_MISSING: Any = object()


@dataclass(frozen=True)
class LeanResponse:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


class LeanRequest:
    """What a lean handler reads: headers, path parameters, query and body, each once."""

    __slots__ = ("errors", "path_params", "receive", "scope", "services")

    def __init__(
        self, scope: Scope, receive: Receive, path_params: dict[str, str], services: Services
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        self.services = services
        self.errors: list[dict[str, Any]] = []  # validation errors, raised together

    def header(self, name: bytes) -> str | None:
        """The first value of a header (lower-case name), as Starlette's ``Headers.get``."""
        for key, value in self.scope["headers"]:
            if key == name:
                return str(value.decode("latin-1"))
        return None

    async def principal(self, scope_name: str) -> Principal:
        """The bearer key's principal with ``scope_name`` (``deps.scoped``'s checks)."""
        return await authenticate(self.services, _bearer(self.header(b"authorization")), scope_name)

    def path(self, name: str, adapter: TypeAdapter[Any]) -> Any:
        return self._check(adapter, self.path_params[name], ("path", name))

    def query(self, name: str, adapter: TypeAdapter[Any], default: Any = _MISSING) -> Any:
        """A query parameter's last value (as ``QueryParams.get``); absent: its default."""
        value = self._query().get(name)
        if value is None:
            if default is _MISSING:
                self.errors.append(
                    {"type": "missing", "loc": ("query", name), "msg": "Field required"}
                )
            return default
        return self._check(adapter, value, ("query", name))

    def body(self, raw: Any, adapter: TypeAdapter[Any], required: bool) -> Any:
        """Validate what :meth:`read_body` returned, as FastAPI validates a single body."""
        if raw is _MISSING:
            if required:
                self.errors.append({"type": "missing", "loc": ("body",), "msg": "Field required"})
            return None
        return self._check(adapter, raw, ("body",))

    def raise_errors(self) -> None:
        if self.errors:
            raise RequestValidationError(self.errors)

    async def read_body(self) -> Any:
        """The body as FastAPI's handler reads it: JSON (strict, no repeated key) when the
        content type is JSON, else the bytes; ``_MISSING`` when empty."""
        try:
            chunks = []
            more = True
            while more:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            data = b"".join(chunks)
            if not data:
                return _MISSING
            content_type = self.header(b"content-type")
            if content_type and _is_json(content_type):
                return loads_strict(data)
            return data
        except json.JSONDecodeError as exc:
            error = {
                "type": "json_invalid",
                "loc": ("body", exc.pos),
                "msg": "JSON decode error",
                "ctx": {"error": exc.msg},
            }
            raise RequestValidationError([error]) from exc
        except _Disconnected:
            raise
        except Exception as exc:  # what FastAPI answers for any other failure to read it
            raise HTTPException(400, "There was an error parsing the body") from exc

    def _query(self) -> dict[str, str]:
        raw = self.scope.get("query_string", b"").decode("latin-1")
        return dict(parse_qsl(raw, keep_blank_values=True))

    def _check(self, adapter: TypeAdapter[Any], value: Any, loc: tuple[str | int, ...]) -> Any:
        try:
            return adapter.validate_python(value, from_attributes=True)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                self.errors.append({**err, "loc": loc + tuple(err["loc"])})
            return None


class _Disconnected(Exception):
    """The client went away while its body was read: nothing to answer."""


def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _bearer(authorization: str | None) -> str | None:
    """The credentials of ``Authorization: Bearer …`` as ``HTTPBearer(auto_error=False)``."""
    if not authorization:
        return None
    scheme, _, param = authorization.partition(" ")
    credentials = param.strip()
    if not scheme or not credentials or scheme.lower() != "bearer":
        return None
    return credentials


Handler = Callable[[LeanRequest], Awaitable[LeanResponse]]


@dataclass(frozen=True)
class LeanRoute:
    """A documented route served by ``handler``; ``path_format`` is the route's template."""

    method: str
    path_format: str
    handler: Handler

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path_format.split("/"))


class LeanLane:
    """The lean routes, found by method and path shape: the literal segments and the number
    of segments (a parameter is one segment, as Starlette's ``{name}`` matches ``[^/]+``)."""

    def __init__(self, routes: Iterable[LeanRoute]) -> None:
        self.routes = list(routes)
        self._routes: dict[tuple[str, int], list[tuple[LeanRoute, tuple[int, ...]]]] = {}
        for route in self.routes:
            segments = route.segments
            params = tuple(i for i, s in enumerate(segments) if s.startswith("{"))
            self._routes.setdefault((route.method, len(segments)), []).append((route, params))

    def match(self, method: str, path: str) -> tuple[LeanRoute, dict[str, str]] | None:
        candidates = self._routes.get((method, path.count("/") + 1))
        if candidates is None:
            return None
        parts = path.split("/")
        for route, params in candidates:
            segments = route.segments
            if all(
                (i in params and parts[i] != "") or parts[i] == segments[i]
                for i in range(len(parts))
            ):
                return route, {segments[i][1:-1]: parts[i] for i in params}
        return None

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app at the end of the lean stack: runs the matched route's handler."""
        route: LeanRoute = scope["route"]
        services: Services = scope["app"].state.services
        request = LeanRequest(scope, receive, scope["path_params"], services)
        try:
            response = await route.handler(request)
        except _Disconnected:
            return
        except (StockSyncError, RequestValidationError, HTTPException, RedisError) as exc:
            problem = await problem_response_for(Request(scope, receive), exc)
            await problem(scope, receive, send)
            return
        body = response.body
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    *JSON_HEADERS,
                    *response.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class LeanApp(FastAPI):
    """FastAPI with the lean lane in front: a request a lean route matches goes through the
    app's own middleware (request log, metrics, body limit: the same classes and options) to
    the route's handler, and skips Starlette's error and exception layers, the router and
    FastAPI's handler. Every other request is FastAPI's, unchanged."""

    lane: LeanLane | None = None
    _lean_stack: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.lane is not None and scope["type"] == "http":
            found = self.lane.match(scope["method"], scope["path"])
            if found is not None:
                scope["app"] = self
                scope["route"], scope["path_params"] = found  # the metrics and log read it
                if self._lean_stack is None:
                    self._lean_stack = self._build_lean_stack(self.lane)
                await self._lean_stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _build_lean_stack(self, lane: LeanLane) -> ASGIApp:
        app: ASGIApp = lane.serve
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def routes_of(*groups: Sequence[LeanRoute]) -> list[LeanRoute]:
    return [route for group in groups for route in group]
