"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stocksync.api.deps import bearer, scoped, services
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.health import readiness

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
    """Each dependency's state: ``checks`` the required ones (Redis, the database: 503 when
    one fails), ``reported`` the others (the Lua scripts, the ledger copy's consumers and
    lag), ``details`` what each measured. See ``stocksync/health.py``."""
    svc = services(request)
    report = await readiness(svc.store, svc.engine, svc.settings)
    return JSONResponse(report.as_json(), status_code=200 if report.ready else 503)


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
