"""The returns desk's read: what of an order may still come back, found by reservation id or
hold code.

A desk key (scope ``stock:write``, bound to its store) takes back any fulfilled order at its
own store, bought online or in another store (``POST /v1/returns``); the reservation itself
stays hidden from it by the reservation rules (stocksync/api/reservation_access.py). This read
gives the desk what the return needs and no more: the order's state, and per SKU the units
fulfilled, returned so far and returnable. No customer reference, no locations.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from stocksync.api.deps import Services, StockWriter, services
from stocksync.api.desk_schemas import ReturnableLineOut, ReturnableOut
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.reservation_access import load_reservation
from stocksync.api.schemas import HoldCodePath, ReservationIdPath
from stocksync.domain.errors import NotFound
from stocksync.domain.model import State
from stocksync.store.pickups import PickupOps

router = APIRouter(tags=["returns"], responses=PROBLEM_RESPONSES)


async def _returnable(svc: Services, reservation_id: str) -> ReturnableOut:
    order, _ = await load_reservation(svc, reservation_id)
    units: dict[str, int] = {}
    for line in order.lines:
        units[line.sku] = units.get(line.sku, 0) + line.qty
    fulfilled = order.state == State.FULFILLED
    lines = []
    for sku, qty in units.items():
        sold = qty if fulfilled else 0
        returned = order.returned_units.get(sku, 0)
        lines.append(
            ReturnableLineOut(
                sku=sku, fulfilled=sold, returned=returned, returnable=max(0, sold - returned)
            )
        )
    return ReturnableOut(
        reservation_id=order.reservation_id,
        hold_code=order.hold_code,
        state=order.state,
        lines=lines,
        return_ids=order.return_ids,
    )


@router.get("/v1/reservations/{reservation_id}/returnable", response_model=ReturnableOut)
async def get_returnable(
    reservation_id: ReservationIdPath, principal: StockWriter, request: Request
) -> ReturnableOut:
    """What of the order may still come back (the returns desk; scope ``stock:write``)."""
    return await _returnable(services(request), reservation_id)


@router.get("/v1/holds/{code}/returnable", response_model=ReturnableOut)
async def get_returnable_by_code(
    code: HoldCodePath, principal: StockWriter, request: Request
) -> ReturnableOut:
    """The same, found by the order's hold code (any case, the dash optional) while Redis
    keeps the reservation."""
    svc = services(request)
    reservation_id = await PickupOps(svc.store).reservation_id_by_code(code)
    if reservation_id is None:
        raise NotFound(f"no hold with code {code!r}", resource="hold")
    return await _returnable(svc, reservation_id)
