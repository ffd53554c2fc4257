"""Transfers: units shipped from one location to another of its stock domain, then received
(shortfalls reported) or cancelled."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from stocksync.api.convert import to_ms
from stocksync.api.deps import Reader, StockWriter, services
from stocksync.api.problems import PROBLEM_RESPONSES, problem_response
from stocksync.api.schemas import EmptyIn
from stocksync.api.strict_json import StrictJsonRoute
from stocksync.api.transfer_schemas import (
    ReceiptIn,
    TransferIdPath,
    TransferIn,
    TransferLineOut,
    TransferList,
    TransferOut,
)
from stocksync.auth.principal import Principal
from stocksync.domain.clock import ms_to_datetime
from stocksync.domain.errors import NotFound
from stocksync.domain.model import LOCATION_PATTERN, TransferState
from stocksync.domain.transfers import Transfer
from stocksync.store.transfers import LIST_LIMIT_MAX, access_of

router = APIRouter(
    prefix="/v1/transfers",
    tags=["transfers"],
    responses={
        **PROBLEM_RESPONSES,
        409: problem_response(
            "insufficient_stock | insufficient_units | receive_exceeds_shipped | "
            "invalid_transition | idempotency_conflict | cross_domain | too_many_arrivals"
        ),
    },
    route_class=StrictJsonRoute,
)


def transfer_out(transfer: Transfer) -> TransferOut:
    expected = transfer.expected_at_ms
    return TransferOut(
        transfer_id=transfer.transfer_id,
        from_location_id=transfer.from_location_id,
        to_location_id=transfer.to_location_id,
        state=transfer.state.value,
        lines=[
            TransferLineOut(
                sku=line.sku,
                shipped=line.shipped,
                received=line.received,
                shortfall=transfer.shortfall(line),
            )
            for line in transfer.lines
        ],
        expected_at=None if expected is None else ms_to_datetime(expected),
        created_at=ms_to_datetime(transfer.created_at_ms),
        updated_at=ms_to_datetime(transfer.updated_at_ms),
        replayed=transfer.replayed,
        supply_id=transfer.supply_id,
        at_risk_reservations=transfer.at_risk_reservations,
    )


def _answer(response: Response, transfer: Transfer) -> TransferOut:
    if transfer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return transfer_out(transfer)


@router.post(
    "",
    response_model=TransferOut,
    status_code=201,
    responses={200: {"model": TransferOut, "description": "Replayed: same id, same body"}},
)
async def ship_transfer(
    body: TransferIn, principal: StockWriter, request: Request, response: Response
) -> TransferOut:
    """Ship at once: the units leave the source's on_hand and enter the target's in_transit.

    Without ``force`` a line ships only what is available at the source (``409
    insufficient_stock`` listing the short lines); with it, up to on_hand (``409
    insufficient_units`` beyond), and holds left short are flagged at risk. The same id and
    body again is 200 with the stored transfer; another body is ``409 idempotency_conflict``.
    A location-bound key must be bound to the source.
    """
    principal.require_locations([body.from_location_id])
    svc = services(request)
    transfer = await svc.store.ship_transfer(
        body.transfer_id,
        body.from_location_id,
        body.to_location_id,
        [(line.sku, line.qty) for line in body.lines],
        expected_at_ms=to_ms(body.expected_at),
        force=body.force,
    )
    if transfer.at_risk_reservations:
        svc.metrics.oversell_risk.inc(transfer.at_risk_reservations)
    if transfer.replayed:
        response.status_code = 200
    return _answer(response, transfer)


@router.post("/{transfer_id}/receive", response_model=TransferOut)
async def receive_transfer(
    transfer_id: TransferIdPath,
    body: ReceiptIn,
    principal: StockWriter,
    request: Request,
    response: Response,
) -> TransferOut:
    """shipped → received: the units that arrived enter the target's on_hand.

    Per SKU at most what was shipped (a SKU not shipped, or more: ``409
    receive_exceeds_shipped``); a shipped SKU not named arrived 0, and every shortfall is
    reported. ``supply_id`` consumes that incoming supply at the target by what arrived. The
    same receipt again is a replay; any other after it, or one after a cancel, is ``409
    invalid_transition``. A location-bound key must be bound to the target.
    """
    transfer = await services(request).store.receive_transfer(
        transfer_id,
        [(line.sku, line.qty) for line in body.lines],
        supply_id=body.supply_id,
        access=access_of(principal.locations),
    )
    return _answer(response, transfer)


@router.post("/{transfer_id}/cancel", response_model=TransferOut)
async def cancel_transfer(
    transfer_id: TransferIdPath,
    principal: StockWriter,
    request: Request,
    response: Response,
    body: EmptyIn | None = None,
) -> TransferOut:
    """shipped → cancelled: the units go back to the source's on_hand. Cancelling again is a
    replay; after a receipt it is ``409 invalid_transition``. A location-bound key must be
    bound to the source."""
    transfer = await services(request).store.cancel_transfer(
        transfer_id, access=access_of(principal.locations)
    )
    return _answer(response, transfer)


def _visible(principal: Principal, transfer: Transfer) -> bool:
    ends = {transfer.from_location_id, transfer.to_location_id}
    return principal.locations is None or bool(ends & principal.locations)


@router.get("/{transfer_id}", response_model=TransferOut)
async def get_transfer(
    transfer_id: TransferIdPath, principal: Reader, request: Request
) -> TransferOut:
    """A transfer (a received or cancelled one is kept for the retention). A key bound to
    neither of its locations gets ``404``."""
    transfer = await services(request).store.get_transfer(transfer_id)
    if not _visible(principal, transfer):
        raise NotFound(f"transfer {transfer_id!r} not found", resource="transfer")
    return transfer_out(transfer)


@router.get("", response_model=TransferList)
async def list_transfers(
    location_id: Annotated[str, Query(pattern=LOCATION_PATTERN)],
    principal: Reader,
    request: Request,
    state: Annotated[TransferState | None, Query()] = None,
    direction: Annotated[Literal["in", "out", "both"], Query()] = "both",
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 100,
) -> TransferList:
    """The transfers from (``out``) and to (``in``) a location, newest first."""
    principal.require_locations([location_id])
    found = await services(request).store.list_transfers(
        location_id, state=state, direction=direction, limit=limit
    )
    return TransferList(transfers=[transfer_out(t) for t in found])
