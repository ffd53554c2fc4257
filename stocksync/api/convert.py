"""Domain objects to response bodies."""

from __future__ import annotations

import json
from datetime import datetime

from stocksync.api.schemas import (
    ArrivalOut,
    HistoryOut,
    LineOut,
    LocationOut,
    MovementOut,
    PoolSourceOut,
    PositionOut,
    ReservationOut,
    StockChangeOut,
)
from stocksync.domain.clock import datetime_to_ms, ms_to_datetime
from stocksync.domain.codes import display_hold_code
from stocksync.domain.model import Arrival, Location, Position, Reservation, StockChangeResult
from stocksync.ledger.history import bucket_values, decoded_details, shown_details
from stocksync.ledger.tables import LedgerReservation, Movement, ReservationTransition


def _code(stored: str | None) -> str | None:
    return None if stored is None else display_hold_code(stored)


def to_ms(moment: datetime | None) -> int | None:
    return None if moment is None else datetime_to_ms(moment)


def location_out(location: Location) -> LocationOut:
    return LocationOut(**location.__dict__)


def position_out(position: Position) -> PositionOut:
    return PositionOut(
        sku=position.sku,
        location_id=position.location_id,
        on_hand=position.on_hand,
        reserved=position.reserved,
        safety_stock=position.safety_stock,
        available=position.available,
        damaged=position.damaged,
        quality_control=position.quality_control,
        in_transit=position.in_transit,
        incoming=position.incoming,
        arrivals=[arrival_out(a) for a in position.arrivals],
    )


def movement_out(row: Movement) -> MovementOut:
    """A ledger movement as the position history shows it (columns, and from ``details`` the
    buckets after a bucket event and the names it carries)."""
    details = decoded_details(row)
    shown = {**bucket_values(details), "details": shown_details(details)}
    return MovementOut.model_validate(row.model_dump() | shown)


def arrival_out(arrival: Arrival) -> ArrivalOut:
    expected = arrival.expected_at_ms
    return ArrivalOut(
        kind=arrival.kind.value,
        id=arrival.id,
        qty=arrival.qty,
        expected_at=None if expected is None else ms_to_datetime(expected),
    )


def stock_change_out(result: StockChangeResult) -> StockChangeOut:
    return StockChangeOut(
        **position_out(result.position).model_dump(),
        applied=result.applied,
        replayed=result.replayed,
        seq=result.seq,
        at_risk_reservations=result.at_risk_reservations,
    )


def reservation_out(reservation: Reservation) -> ReservationOut:
    return ReservationOut(
        reservation_id=reservation.reservation_id,
        channel=reservation.channel,
        state=reservation.state.value,
        lines=[
            LineOut(sku=ln.sku, location_id=ln.location_id, qty=ln.qty) for ln in reservation.lines
        ],
        created_at=ms_to_datetime(reservation.created_at_ms),
        updated_at=ms_to_datetime(reservation.updated_at_ms),
        expires_at=None
        if reservation.expires_at_ms is None
        else ms_to_datetime(reservation.expires_at_ms),
        customer_ref=reservation.customer_ref,
        at_risk=reservation.at_risk,
        history=[
            HistoryOut(state=state, at=ms_to_datetime(at)) for state, at in reservation.history
        ],
        hold_code=_code(reservation.hold_code),
        pool_sources=[
            PoolSourceOut(sku=s.sku, pool=s.pool, location_id=s.location_id, qty=s.qty)
            for s in reservation.pool_sources
        ],
        returned_units=dict(reservation.returned_units),
        return_ids=list(reservation.return_ids),
    )


def ledger_reservation_out(
    row: LedgerReservation, transitions: list[ReservationTransition], hold_code: str | None = None
) -> ReservationOut:
    """A reservation as the ledger keeps it, once Redis has pruned it."""
    return ReservationOut(
        reservation_id=row.reservation_id,
        channel=row.channel,
        state=row.state,
        lines=[LineOut(sku=s, location_id=loc, qty=q) for s, loc, q in json.loads(row.lines)],
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        customer_ref=row.customer_ref,
        at_risk=row.at_risk,
        history=[HistoryOut(state=t.state, at=t.at) for t in transitions],
        hold_code=_code(hold_code),
    )
