"""Returns: units of a fulfilled reservation, or an unlinked till return, back at any store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request, Response

from stocksync.api.deps import Reader, Services, scoped, services
from stocksync.api.problems import PROBLEM_RESPONSES, problem_response
from stocksync.api.reservation_access import access_spec
from stocksync.api.shelf_schemas import ReturnIn, ReturnLineOut, ReturnOut
from stocksync.api.strict_json import StrictJsonRoute
from stocksync.auth.principal import Principal
from stocksync.domain.clock import ms_to_datetime
from stocksync.domain.errors import NotFound
from stocksync.domain.model import ID_PATTERN
from stocksync.domain.returns import ArchivedSale, ReturnLine, StockReturn
from stocksync.ledger.history import archived_sale
from stocksync.store.returns import ArchiveLookup

router = APIRouter(
    prefix="/v1/returns",
    tags=["returns"],
    responses={
        **PROBLEM_RESPONSES,
        409: problem_response(
            "reservation_not_fulfilled | return_exceeds_fulfilled | return_window_closed | "
            "idempotency_conflict | cross_domain"
        ),
    },
    route_class=StrictJsonRoute,
)
# A linked return needs one of these scopes (an unlinked till return: stock:write).
Returner = Annotated[Principal, Depends(scoped("reserve", "stock:write"))]
ReturnIdPath = Annotated[str, Path(pattern=ID_PATTERN)]


def return_out(stock_return: StockReturn) -> ReturnOut:
    return ReturnOut(
        return_id=stock_return.return_id,
        reservation_id=stock_return.reservation_id,
        lines=[
            ReturnLineOut(
                sku=ln.sku, location_id=ln.location_id, qty=ln.qty, disposition=ln.disposition
            )
            for ln in stock_return.lines
        ],
        created_at=ms_to_datetime(stock_return.created_at_ms),
        replayed=stock_return.replayed,
    )


@router.post(
    "",
    response_model=ReturnOut,
    status_code=201,
    responses={200: {"model": ReturnOut, "description": "Replayed: same return_id, same body"}},
)
async def create_return(
    body: ReturnIn, principal: Returner, request: Request, response: Response
) -> ReturnOut:
    """Units back at any store, each line into the bucket of its disposition: ``restock``
    (on_hand, on sale again), ``inspect`` (quality_control), ``damaged``.

    With ``reservation_id`` (scope stock:write — a returns desk takes back any order at its
    own locations, bought online or in another store — or scope reserve and access to the
    reservation, as for its transitions): it
    must be fulfilled, and the units returned of a SKU over all its returns never exceed the
    units it fulfilled; its lines may be at any location of the reservation's stock domain.
    Without: an unlinked till return (scope stock:write). Idempotent by ``return_id``: the
    same body again answers 200 with ``replayed``. Every refusal changes nothing."""
    if body.reservation_id is None:
        principal.require("stock:write")
    principal.require_locations(ln.location_id for ln in body.lines)
    svc = services(request)
    lines = [ReturnLine(ln.sku, ln.location_id, ln.qty, ln.disposition) for ln in body.lines]
    recorded = await svc.store.record_return(
        body.return_id,
        lines,
        reservation_id=body.reservation_id,
        source=body.source,
        # Staff who may change stock at the lines' locations take any order back there (the
        # desk does not own the sale); a channel key only its own reservations.
        access="" if "stock:write" in principal.scopes else access_spec(principal),
        archive=_ledger_lookup(svc, body.reservation_id),
    )
    if recorded.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    else:
        for line in recorded.lines:
            svc.metrics.returns.labels(line.disposition.value).inc(line.qty)
    return return_out(recorded)


def _ledger_lookup(svc: Services, reservation_id: str | None) -> ArchiveLookup | None:
    """How the store reads a reservation Redis pruned: from the ledger (a worker thread)."""
    if reservation_id is None:
        return None

    async def lookup(namespaces: Sequence[str]) -> ArchivedSale | None:
        return await anyio.to_thread.run_sync(archived_sale, svc.engine, namespaces, reservation_id)

    return lookup


@router.get("/{return_id}", response_model=ReturnOut)
async def get_return(return_id: ReturnIdPath, principal: Reader, request: Request) -> ReturnOut:
    """A return, kept for the return retention. A key bound to locations sees the returns
    whose lines are all at its locations (any other is 404)."""
    found = await services(request).store.get_return(return_id)
    bound = principal.locations
    outside = bound is not None and any(ln.location_id not in bound for ln in found.lines)
    if outside and "admin" not in principal.scopes:
        raise NotFound(f"return {return_id!r} not found", resource="return")
    return return_out(found)
