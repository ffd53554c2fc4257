"""Moves between a position's buckets: on_hand, damaged, quality_control, or written off."""

from __future__ import annotations

from fastapi import APIRouter, Request

from stocksync.api.convert import position_out
from stocksync.api.deps import StockWriter, services
from stocksync.api.problems import PROBLEM_RESPONSES, problem_response
from stocksync.api.schemas import LocationPath, SkuPath
from stocksync.api.shelf_schemas import BucketMoveIn, BucketMoveOut
from stocksync.api.strict_json import StrictJsonRoute

router = APIRouter(
    prefix="/v1/stock",
    tags=["stock"],
    responses={
        **PROBLEM_RESPONSES,
        409: problem_response("insufficient_units | idempotency_conflict"),
    },
    route_class=StrictJsonRoute,
)


@router.post("/{location_id}/{sku}/moves", response_model=BucketMoveOut)
async def post_move(
    location_id: LocationPath,
    sku: SkuPath,
    body: BucketMoveIn,
    principal: StockWriter,
    request: Request,
) -> BucketMoveOut:
    """Move units between on_hand, damaged and quality_control, or write them off: an
    inspection's outcome, a unit found damaged on the shelf. Idempotent by (source,
    source_event_id).

    ``409 insufficient_units`` when the source bucket holds fewer units (on_hand: its physical
    units, whatever holds promise); nothing moves. A move out of on_hand that leaves fewer
    units than are reserved flags holds there at risk (``at_risk_reservations``)."""
    principal.require_locations([location_id])
    svc = services(request)
    result = await svc.store.move_units(
        sku,
        location_id,
        body.qty,
        from_bucket=body.from_,
        to_bucket=body.to,
        reason=body.reason,
        source=body.source,
        source_event_id=body.source_event_id,
    )
    svc.metrics.stock_changes.labels("move", "replayed" if result.replayed else "applied").inc()
    if result.at_risk_reservations and not result.replayed:
        svc.metrics.oversell_risk.inc(result.at_risk_reservations)
    return BucketMoveOut(
        **position_out(result.position).model_dump(),
        from_=body.from_,
        to=body.to,
        qty=body.qty,
        applied=result.applied,
        replayed=result.replayed,
        seq=result.seq,
        at_risk_reservations=result.at_risk_reservations,
    )
