"""RFC 9457 problem+json responses with a stable ``code`` for every error."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from stocksync.domain.errors import StockSyncError
from stocksync.store.base import REQUEST_ID

MEDIA_TYPE = "application/problem+json"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int, code: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": instance,
        **extra,
    }
    request_id = REQUEST_ID.get()
    if request_id:  # the id this request's log lines carry (stocksync.api.request_log)
        body["request_id"] = request_id
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StockSyncError)
    response = problem(exc.status, exc.code, exc.title, exc.detail, request.url.path, **exc.extra)
    if exc.retry_after_seconds is not None:
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


def _message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", ""))
    if err.get("type") == "json_invalid":  # FastAPI's message alone does not say what is wrong
        reason = (err.get("ctx") or {}).get("error")
        return f"{msg}: {reason}" if reason else msg
    return msg


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": _message(err), "type": err.get("type", "")}
        for err in exc.errors()[:20]
    ]
    return problem(
        422,
        "validation_error",
        "Invalid request",
        f"{len(exc.errors())} validation error(s); nothing was changed",
        request.url.path,
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    response = problem(
        exc.status_code,
        code,
        code.replace("_", " ").capitalize(),
        str(exc.detail),
        request.url.path,
    )
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:  # RFC 9110: say which methods the resource supports
        response.headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    return response


def _allowed_methods(request: Request) -> set[str]:
    """Methods some route answers on this path (Starlette's own Allow names only the first
    route's, and a path such as /v1/stock/{location_id}/{sku} has one route per method)."""
    routes = request.app.router.routes
    return {
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    # Overload (no pooled connection free in time) or Redis down. A call that timed out may
    # still have run on the server: retrying with the same ids is safe (idempotent).
    response = problem(
        503,
        "store_unavailable",
        "Stock store unavailable",
        f"Redis did not answer in time ({type(exc).__name__}); retry the same request",
        request.url.path,
    )
    response.headers["Retry-After"] = "1"
    return response


HANDLERS = (
    (StockSyncError, _domain_error),
    (RequestValidationError, _validation_error),
    (StarletteHTTPException, _http_error),
    (RedisError, _redis_error),
)


def install_problem_handlers(app: FastAPI) -> None:
    for kind, handler in HANDLERS:
        app.add_exception_handler(kind, handler)
    _document_problem_schema(app)


async def problem_response_for(request: Request, exc: Exception) -> JSONResponse:
    """The answer the app's handlers give ``exc`` (one of ``HANDLERS``' kinds), for paths
    that answer without FastAPI's exception middleware (stocksync.api.lean)."""
    for kind, handler in HANDLERS:
        if isinstance(exc, kind):
            return await handler(request, exc)
    raise exc


# -- OpenAPI ------------------------------------------------------------------------------


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is stable, the other members may carry more."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[ValidationItem] | None = None


PROBLEM_SCHEMA_REF = {"$ref": "#/components/schemas/Problem"}


def problem_response(description: str) -> dict[str, Any]:
    """An OpenAPI response of problem+json; ``description`` lists its codes."""
    return {"description": description, "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA_REF}}}


def _document_problem_schema(app: FastAPI) -> None:
    """Put the Problem schema in the OpenAPI components the responses above refer to."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # also cached as app.openapi_schema
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem_schema.pop("$defs", {}))
        schemas["Problem"] = problem_schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# What every /v1 route may answer besides its success. Route-specific ones (429, a second
# success status) are declared on the route.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: problem_response(description)
    for status, description in {
        400: "bad_request: the body is not UTF-8 JSON",
        401: "unauthorized: missing, invalid or revoked API key",
        403: "forbidden: the key lacks the scope or the location",
        404: "not_found",
        409: "insufficient_stock | idempotency_conflict | invalid_transition | "
        "hold_limit_reached | on_hand_mismatch",
        413: "payload_too_large",
        422: "validation_error: nothing was changed",
        503: "store_unavailable (retry the same request; Retry-After) | stock_regressed | "
        "ledger_unavailable | ledger_busy | replication_timeout (applied on the primary, "
        "not yet on a replica: retry the same request; Retry-After)",
    }.items()
}
