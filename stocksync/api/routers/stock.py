"""Stock positions: absolute counts, adjustments, reads."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import TypeAdapter

from stocksync.api.convert import movement_out, position_out, stock_change_out, to_ms
from stocksync.api.deps import Reader, StockWriter, services
from stocksync.api.lean import LeanRequest, LeanResponse, LeanRoute
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.schemas import (
    SQL_BIGINT_MAX,
    AdjustmentIn,
    CountIn,
    LocationPath,
    MovementPage,
    PositionOut,
    SkuPath,
)
from stocksync.api.schemas import StockChangeOut as Out
from stocksync.api.strict_json import StrictJsonRoute
from stocksync.domain.model import StockChangeResult
from stocksync.ledger.history import position_history
from stocksync.metrics import Metrics

router = APIRouter(
    prefix="/v1/stock", tags=["stock"], responses=PROBLEM_RESPONSES, route_class=StrictJsonRoute
)


def _count(metrics: Metrics, kind: str, result: StockChangeResult) -> None:
    outcome = "replayed" if result.replayed else ("applied" if result.applied else "stale")
    metrics.stock_changes.labels(kind, outcome).inc()
    if result.at_risk_reservations:
        metrics.oversell_risk.inc(result.at_risk_reservations)


@router.put("/{location_id}/{sku}", response_model=Out)
async def put_count(
    location_id: LocationPath,
    sku: SkuPath,
    body: CountIn,
    principal: StockWriter,
    request: Request,
) -> Out:
    """Absolute physical count; sales after ``as_of`` are kept (DESIGN rule 7)."""
    principal.require_locations([location_id])
    svc = services(request)
    result = await svc.store.set_count(
        sku,
        location_id,
        body.on_hand,
        as_of_ms=to_ms(body.as_of),
        expected_on_hand=body.expected_on_hand,
        safety_stock=body.safety_stock,
        source=body.source,
        source_event_id=body.source_event_id,
    )
    _count(svc.metrics, "count", result)
    return stock_change_out(result)


@router.post("/{location_id}/{sku}/adjustments", response_model=Out)
async def post_adjustment(
    location_id: LocationPath,
    sku: SkuPath,
    body: AdjustmentIn,
    principal: StockWriter,
    request: Request,
) -> Out:
    """Physical delta (sale, receipt, damage), idempotent by (source, source_event_id).

    A receipt may name the incoming ``supply_id`` it delivers: the units received consume it.
    """
    principal.require_locations([location_id])
    svc = services(request)
    result = await svc.store.adjust(
        sku,
        location_id,
        body.delta,
        reason=body.reason,
        source=body.source,
        source_event_id=body.source_event_id,
        occurred_at_ms=to_ms(body.occurred_at),
        supply_id=body.supply_id,
    )
    _count(svc.metrics, "adjustment", result)
    return stock_change_out(result)


@router.get("/{location_id}/{sku}", response_model=PositionOut)
async def get_position(
    location_id: LocationPath, sku: SkuPath, principal: Reader, request: Request
) -> PositionOut:
    """One position; ``available`` is clamped at zero."""
    principal.require_locations([location_id])
    return position_out(await services(request).store.position(sku, location_id))


_LOCATION = TypeAdapter(LocationPath)
_SKU = TypeAdapter(SkuPath)
_POSITION_OUT = TypeAdapter(PositionOut)


async def lean_get_position(req: LeanRequest) -> LeanResponse:
    """GET /{location_id}/{sku} on the lean path (stocksync.api.lean)."""
    principal = await req.principal("read")
    location_id = req.path("location_id", _LOCATION)
    sku = req.path("sku", _SKU)
    req.raise_errors()
    principal.require_locations([location_id])
    position = await req.services.store.position(sku, location_id)
    return LeanResponse(200, _POSITION_OUT.dump_json(position_out(position)))


LEAN_ROUTES = (LeanRoute("GET", f"{router.prefix}/{{location_id}}/{{sku}}", lean_get_position),)


@router.get("/{location_id}/{sku}/history", response_model=MovementPage)
async def get_history(
    location_id: LocationPath,
    sku: SkuPath,
    principal: Reader,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_seq: Annotated[int | None, Query(ge=1, le=SQL_BIGINT_MAX)] = None,
) -> MovementPage:
    """The position's movements from the durable ledger, newest first, paged by ``seq``."""
    principal.require_locations([location_id])
    svc = services(request)
    # The location's stock domain has its own ledger namespace (the default's is the
    # deployment's namespace itself).
    domain = await svc.store.domain_of_location(location_id)
    namespace = svc.store.keys_of(domain).ledger_namespace
    rows = await anyio.to_thread.run_sync(
        lambda: position_history(svc.engine, namespace, sku, location_id, limit, before_seq)
    )
    movements = [movement_out(row) for row in rows]
    next_page = movements[-1].seq if len(movements) == limit else None
    return MovementPage(
        sku=sku, location_id=location_id, movements=movements, next_before_seq=next_page
    )
