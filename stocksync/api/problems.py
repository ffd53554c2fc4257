"""RFC 9457 problem+json responses with a stable ``code`` for every error."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from stocksync.domain.errors import RateLimited, StockSyncError

MEDIA_TYPE = "application/problem+json"
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
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StockSyncError)
    response = problem(exc.status, exc.code, exc.title, exc.detail, request.url.path, **exc.extra)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
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
    return problem(
        exc.status_code,
        code,
        code.replace("_", " ").capitalize(),
        str(exc.detail),
        request.url.path,
    )


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


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StockSyncError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RedisError, _redis_error)


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": code, "content": {MEDIA_TYPE: {}}}
    for status, code in {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        409: "insufficient_stock | idempotency_conflict | invalid_transition | hold_limit_reached",
        422: "validation_error",
    }.items()
}
