"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from stocksync.api.deps import bearer, scoped, services
from stocksync.api.problems import PROBLEM_RESPONSES

router = APIRouter(tags=["operations"])
require_reader = scoped("read")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "Redis or the database does not answer (same body)"}},
)
async def readyz(request: Request) -> JSONResponse:
    """Redis and the database answer; 503 otherwise."""
    checks: dict[str, str] = {}
    try:
        await services(request).store.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # readiness reports any failure, whatever its type
        checks["redis"] = f"error: {type(exc).__name__}"
    engine = services(request).engine
    try:
        await anyio.to_thread.run_sync(_ping_database, engine)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


def _ping_database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        },
        401: PROBLEM_RESPONSES[401],
        403: PROBLEM_RESPONSES[403],
    },
    # The key is optional unless the server sets metrics_require_key.
    openapi_extra={"security": [{}, {"HTTPBearer": []}]},
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition: request counts and latencies by method, route template and
    status, reservation and stock-change outcomes by channel, script latencies, ledger lag and
    drift. No SKU, reservation, customer or key appears in it. With ``metrics_require_key``
    set, it needs a key with the ``read`` (or ``admin``) scope."""
    if services(request).settings.metrics_require_key:
        await require_reader(request, await bearer(request))
    return Response(
        generate_latest(services(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
