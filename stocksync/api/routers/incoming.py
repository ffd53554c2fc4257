"""Incoming supply at a position: a purchase order or an announced delivery with the time it
is expected. It counts in ``available_by`` of an availability read, never in ``available``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from stocksync.api.convert import to_ms
from stocksync.api.deps import StockWriter, services
from stocksync.api.problems import PROBLEM_RESPONSES, problem_response
from stocksync.api.schemas import LocationPath, SkuPath
from stocksync.api.strict_json import StrictJsonRoute
from stocksync.api.transfer_schemas import IncomingIn, IncomingOut, SupplyIdPath
from stocksync.domain.clock import ms_to_datetime
from stocksync.domain.errors import NotFound

router = APIRouter(
    prefix="/v1/stock",
    tags=["incoming"],
    responses={**PROBLEM_RESPONSES, 409: problem_response("too_many_arrivals")},
    route_class=StrictJsonRoute,
)

PATH = "/{location_id}/{sku}/incoming/{supply_id}"


@router.put(PATH, response_model=IncomingOut)
async def put_incoming(
    location_id: LocationPath,
    sku: SkuPath,
    supply_id: SupplyIdPath,
    body: IncomingIn,
    principal: StockWriter,
    request: Request,
) -> IncomingOut:
    """Create or replace an incoming supply: ``qty`` units expected at ``expected_at``.

    A position has at most 50 arrivals (supplies and transfers on their way): one more is
    ``409 too_many_arrivals``. A receipt that names the supply (an adjustment, a transfer
    receipt) consumes it.
    """
    principal.require_locations([location_id])
    expected_ms = to_ms(body.expected_at)
    assert expected_ms is not None  # required by the schema
    arrival = await services(request).store.set_incoming(
        sku, location_id, supply_id, body.qty, expected_ms
    )
    return IncomingOut(
        supply_id=supply_id,
        sku=sku,
        location_id=location_id,
        qty=arrival.qty,
        expected_at=ms_to_datetime(expected_ms),
    )


@router.delete(PATH, status_code=204)
async def delete_incoming(
    location_id: LocationPath,
    sku: SkuPath,
    supply_id: SupplyIdPath,
    principal: StockWriter,
    request: Request,
) -> Response:
    """Remove an incoming supply (cancelled, or delivered without a receipt naming it);
    ``404`` when the position has none of that id."""
    principal.require_locations([location_id])
    if not await services(request).store.remove_incoming(sku, location_id, supply_id):
        raise NotFound(f"incoming supply {supply_id!r} not found", resource="incoming_supply")
    return Response(status_code=204)
