"""Webhook receivers of the configured connectors: ``POST /v1/connectors/{name}/webhook``.

No bearer key here: each connector verifies its vendor's signature over the raw body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from stocksync.api.deps import services
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.domain.errors import NotFound
from stocksync.plugins import Connector, EngineContext
from stocksync.store.base import acting_as

router = APIRouter(prefix="/v1/connectors", tags=["connectors"], responses=PROBLEM_RESPONSES)

ConnectorName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


def engine_context(request: Request) -> EngineContext:
    svc = services(request)
    return EngineContext(
        svc.settings, svc.store, svc.engine, svc.ledger, svc.metrics.registry, svc.sales
    )


@router.post("/{name}/webhook", include_in_schema=True)
async def receive_webhook(name: ConnectorName, request: Request) -> Response:
    """One delivery from a source system, verified and applied by its connector."""
    configured: dict[str, Connector] = request.app.state.connectors
    connector = configured.get(name)
    if connector is None:
        raise NotFound(f"no connector {name!r} is configured on this server", resource="connector")
    with acting_as(f"connector:{name}"):
        return await connector.handle_webhook(engine_context(request), request)
