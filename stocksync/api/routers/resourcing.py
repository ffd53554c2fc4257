"""Re-sourcing: find reservations at risk or of a customer, and move them to another store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError

from stocksync.api.convert import reservation_out
from stocksync.api.deps import Reader, Reserver, services
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.reservation_access import access_spec, visible
from stocksync.api.schemas import (
    CustomerRef,
    MoveIn,
    ReservationIdPath,
    ReservationList,
    ReservationOut,
)
from stocksync.api.strict_json import StrictJsonRoute
from stocksync.domain.errors import StockSyncError
from stocksync.domain.model import LOCATION_PATTERN, Reservation
from stocksync.store.pickups import PickupOps

router = APIRouter(
    prefix="/v1/reservations",
    tags=["reservations"],
    responses=PROBLEM_RESPONSES,
    route_class=StrictJsonRoute,
)

LIST_LIMIT = 100  # ~20 µs of Redis time per listed reservation: a list stays under 5 ms


def _invalid(field: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": msg, "type": "value_error"}])


@router.get("", response_model=ReservationList)
async def list_reservations(
    principal: Reader,
    request: Request,
    at_risk: Annotated[bool | None, Query(description="only holds flagged at risk")] = None,
    location_id: Annotated[str | None, Query(pattern=LOCATION_PATTERN)] = None,
    customer_ref: Annotated[CustomerRef | None, Query()] = None,
) -> ReservationList:
    """Active reservations: ``at_risk=true`` (optionally at ``location_id``) and/or a
    ``customer_ref``; at least one of them is required. At most 200, by deadline."""
    if not at_risk and customer_ref is None:
        raise _invalid("at_risk", "give at_risk=true or customer_ref")
    if location_id is not None:
        principal.require_locations([location_id])
    ops = PickupOps(services(request).store)
    found: list[Reservation]
    if customer_ref is not None:
        found = await ops.find("cust", customer_ref, at_risk_only=bool(at_risk), limit=LIST_LIMIT)
        if location_id is not None:
            found = [r for r in found if any(ln.location_id == location_id for ln in r.lines)]
    elif location_id is not None:
        found = await ops.find("loc", location_id, at_risk_only=True, limit=LIST_LIMIT)
    else:
        found = await ops.find("atrisk", limit=LIST_LIMIT)
    return ReservationList(reservations=[reservation_out(r) for r in visible(principal, found)])


@router.post("/{reservation_id}/move", response_model=ReservationOut)
async def move(
    reservation_id: ReservationIdPath, body: MoveIn, principal: Reserver, request: Request
) -> ReservationOut:
    """Move every line at ``from_location_id`` to ``to_location_id`` in one step: the units
    stay promised, the deadline and state are kept, the at-risk flag is cleared. A target
    without room is ``409 insufficient_stock`` and nothing changes."""
    if body.from_location_id == body.to_location_id:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "to_location_id"),
                    "msg": "to_location_id must differ from from_location_id",
                    "type": "value_error",
                }
            ]
        )
    principal.require_locations([body.from_location_id, body.to_location_id])
    svc = services(request)
    try:
        moved = await PickupOps(svc.store).move(
            reservation_id,
            body.from_location_id,
            body.to_location_id,
            access=access_spec(principal),  # another key's reservation is not found
        )
    except StockSyncError as exc:
        svc.metrics.transitions.labels("move", exc.code).inc()
        raise
    svc.metrics.transitions.labels("move", "ok").inc()
    return reservation_out(moved)
