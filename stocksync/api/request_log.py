"""Request ids and the request log: one line per request, and the id echoed to the client.

The id comes from the client's ``X-Request-Id`` when it is a sane token (a proxy's or a
channel's own id, so one id follows a call across systems), else a new one. It is in the
``REQUEST_ID`` context variable while the request runs (every log line carries it), in the
``X-Request-Id`` header of the answer and in the ``request_id`` member of a problem body.

The line names the route template, never the path (paths hold reservation ids and customer
references), and no header, query or body: the key is named by its id, set as the actor
(``api:<key id>``) once the key was verified.
"""

from __future__ import annotations

import logging
import re
import uuid
from time import perf_counter

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stocksync.api.problems import MEDIA_TYPE
from stocksync.store.base import ACTOR, REQUEST_ID

log = logging.getLogger("stocksync.requests")

HEADER = "X-Request-Id"
REQUEST_ID_MAX_LENGTH = 64
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % REQUEST_ID_MAX_LENGTH)
# Probes and scrapes arrive every few seconds: logged at DEBUG unless they fail.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
PROBLEM_BODY_MAX_BYTES = 64 * 1024  # larger bodies are not read for their code


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-Id`` if it is 1-64 characters of ``[A-Za-z0-9._:-]``, else a
    new one (32 hex digits)."""
    value: bytes
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _SANE.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


def problem_code(body: bytes) -> str:
    """The ``code`` of a problem body we sent."""
    if len(body) > PROBLEM_BODY_MAX_BYTES:
        return "error"
    try:
        code = orjson.loads(body).get("code")
    except (orjson.JSONDecodeError, AttributeError):
        return "error"
    return code if isinstance(code, str) else "error"


def _internal_error(rid: str) -> tuple[Message, Message]:
    body = orjson.dumps(
        {
            "type": "/problems/internal_error",
            "title": "Internal error",
            "status": 500,
            "detail": f"the server failed; its log has this request's id ({rid})",
            "code": "internal_error",
            "request_id": rid,
        }
    )
    start: Message = {
        "type": "http.response.start",
        "status": 500,
        "headers": [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (HEADER.lower().encode(), rid.encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class RequestLog:
    """Gives each request its id and logs one line when it ends: method, route template,
    status, outcome (``ok``, or the problem's ``code``), duration, key id.

    An exception no handler turned into an answer is logged with its traceback and answered
    ``500 internal_error`` (with the id), instead of a bare text 500 without one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        rid_token = REQUEST_ID.set(rid)
        actor_token = ACTOR.set("")  # set to the key's once verified (stocksync.api.deps)
        started = perf_counter()
        status = 500
        outcome = "ok"
        response_started = False
        is_problem = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, outcome, response_started, is_problem
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append(HEADER, rid)
                is_problem = headers.get("content-type", "").startswith(MEDIA_TYPE)
                if status >= 400 and not is_problem:
                    outcome = "error"
            elif message["type"] == "http.response.body" and is_problem:
                is_problem = False  # a problem body is one message: read the first only
                outcome = problem_code(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            outcome = "internal_error"
            log.exception("unhandled error in %s %s", scope["method"], _route(scope))
            if response_started:  # too late for a problem: the server closes the connection
                raise
            status = 500
            for message in _internal_error(rid):
                await send(message)
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            route = _route(scope)
            log.log(
                _level(route, status, outcome),
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "outcome": outcome,
                    "duration_ms": round((perf_counter() - started) * 1000, 2),
                },
            )
            ACTOR.reset(actor_token)
            REQUEST_ID.reset(rid_token)


def _level(route: str, status: int, outcome: str) -> int:
    if outcome == "internal_error":
        return logging.ERROR
    if status >= 500:
        return logging.WARNING
    if route in QUIET_ROUTES and status < 400:
        return logging.DEBUG
    return logging.INFO


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path_format", None) or "unmatched"
