"""Store pickup (BOPIS): a store's pick list, and finding a hold by its code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from stocksync.api.convert import reservation_out
from stocksync.api.deps import Reader, services
from stocksync.api.problems import PROBLEM_RESPONSES
from stocksync.api.reservation_access import read_reservation, visible
from stocksync.api.schemas import HoldCodePath, LocationPath, PickupList, ReservationOut
from stocksync.domain.errors import NotFound, Unprocessable
from stocksync.domain.model import ACTIVE, State
from stocksync.store.pickups import PickupOps

router = APIRouter(tags=["pickups"], responses=PROBLEM_RESPONSES)

PICKUP_LIMIT = 500
DEFAULT_STATES = (State.CONFIRMED, State.READY)  # what staff pick and hand over


@router.get("/v1/locations/{location_id}/pickups", response_model=PickupList)
async def list_pickups(
    location_id: LocationPath,
    principal: Reader,
    request: Request,
    state: Annotated[
        list[State] | None,
        Query(description="active states: held, confirmed, ready (default: confirmed and ready)"),
    ] = None,
) -> PickupList:
    """Reservations with a line at this store, by pickup deadline (none last), then age: those
    this key may see (its own; every one for the store's staff and admin keys)."""
    principal.require_locations([location_id])
    wanted = list(dict.fromkeys(state or DEFAULT_STATES))
    if not ACTIVE.issuperset(wanted):
        raise Unprocessable("a pick list shows active reservations: held, confirmed or ready")
    found = await PickupOps(services(request).store).find(
        "loc", location_id, states=wanted, limit=PICKUP_LIMIT
    )
    pickups = [reservation_out(r) for r in visible(principal, found)]
    return PickupList(location_id=location_id, pickups=pickups)


@router.get("/v1/holds/{code}", response_model=ReservationOut)
async def get_hold(code: HoldCodePath, principal: Reader, request: Request) -> ReservationOut:
    """The reservation of a hold code (any case, the dash optional)."""
    svc = services(request)
    reservation_id = await PickupOps(svc.store).reservation_id_by_code(code)
    if reservation_id is None:
        raise NotFound(f"no hold with code {code!r}", resource="hold")
    return await read_reservation(svc, principal, reservation_id)
