"""Reading the ledger: a position's movements, a reservation's transitions, and a pruned
reservation's sale for a return."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from stocksync.domain.clock import datetime_to_ms
from stocksync.domain.events import EventKind
from stocksync.domain.model import Line, State
from stocksync.domain.returns import ArchivedSale
from stocksync.ledger.fold import STATE_RANK, order_details
from stocksync.ledger.tables import LedgerReservation, Movement, ReservationTransition

# What a movement's history shows of its `details`: the names and numbers a bucket or supply
# event carries (buckets or locations, the transfer, return, disposition and supply, times and
# quantities). The rest stays in the ledger: fingerprints, key ids, hold codes, order details.
SHOWN_DETAILS = frozenset(
    {"from", "to", "xfer", "ret", "disp", "supply", "exp", "prev", "left", "by", "shipped"}
)
# A bucket event's values after it (in `details`: they have no column of their own).
BUCKET_VALUES = ("damaged", "quality_control", "in_transit")


def decoded_details(row: Movement) -> dict[str, Any]:
    """The row's ``details`` JSON as a dict ({} when none)."""
    return json.loads(row.details) if row.details else {}


def shown_details(details: Mapping[str, Any]) -> dict[str, str]:
    """The part of a movement's details its history shows (:data:`SHOWN_DETAILS`)."""
    return {k: str(v) for k, v in details.items() if k in SHOWN_DETAILS}


def bucket_values(details: Mapping[str, Any]) -> dict[str, int | None]:
    """The buckets beyond the shelf after the event, None where the event does not carry them."""
    out: dict[str, int | None] = {}
    for name in BUCKET_VALUES:
        value = details.get(name)
        out[name] = None if value is None or value == "" else int(value)
    return out


def position_history(
    engine: Engine,
    namespace: str,
    sku: str,
    location_id: str,
    limit: int,
    before_seq: int | None = None,
) -> list[Movement]:
    """Movements of one position, newest first, paged by ``seq``."""
    query = select(Movement).where(
        Movement.namespace == namespace, Movement.sku == sku, Movement.location_id == location_id
    )
    if before_seq is not None:
        query = query.where(Movement.seq < before_seq)
    with Session(engine) as session:
        return list(session.exec(query.order_by(col(Movement.seq).desc()).limit(limit)))


def reservation_record(
    engine: Engine, namespace: str, reservation_id: str
) -> tuple[LedgerReservation, list[ReservationTransition], str | None, str | None] | None:
    """A reservation as the ledger keeps it (also after Redis pruned it), with transitions,
    its hold code and the API key that created it (both from the hold event)."""
    with Session(engine) as session:
        row = session.get(LedgerReservation, (namespace, reservation_id))
        if row is None:
            return None
        transitions = session.exec(
            select(ReservationTransition)
            .where(
                ReservationTransition.namespace == namespace,
                ReservationTransition.reservation_id == reservation_id,
            )
            .order_by(col(ReservationTransition.at))
        ).all()
        # Two transitions in one millisecond (ready, then fulfilled at once): the state order
        # breaks the tie, as the database's order of equal timestamps is arbitrary.
        transitions = sorted(transitions, key=lambda t: (t.at, STATE_RANK.get(t.state, 0)))
        held = session.exec(
            select(Movement.details).where(
                Movement.namespace == namespace,
                Movement.reservation_id == reservation_id,
                Movement.kind == EventKind.HELD.value,
            )
        ).all()  # one per line: a bounded number
        details = order_details(json.loads(d) for d in held if d)
        return row, list(transitions), details.get("code") or None, details.get("key") or None


def archived_sale(
    engine: Engine, namespaces: Sequence[str], reservation_id: str
) -> ArchivedSale | None:
    """A reservation of any of ``namespaces`` (a deployment's stock domains: an id is claimed
    in one of them) with its lines, owner and fulfilment time; None when the ledger lacks it."""
    with Session(engine) as session:
        row = session.exec(
            select(LedgerReservation).where(
                col(LedgerReservation.namespace).in_(namespaces),
                LedgerReservation.reservation_id == reservation_id,
            )
        ).first()
        if row is None:
            return None
        fulfilled = session.exec(
            select(ReservationTransition.at).where(
                ReservationTransition.namespace == row.namespace,
                ReservationTransition.reservation_id == reservation_id,
                ReservationTransition.state == State.FULFILLED.value,
            )
        ).first()
        held = session.exec(
            select(Movement.details).where(
                Movement.namespace == row.namespace,
                Movement.reservation_id == reservation_id,
                Movement.kind == EventKind.HELD.value,
            )
        ).all()
    owner = order_details(json.loads(d) for d in held if d).get("key") or None
    if fulfilled is None and row.state == State.FULFILLED.value:
        fulfilled = row.updated_at
    return ArchivedSale(
        ledger_namespace=row.namespace,
        state=row.state,
        lines=[Line(str(s), str(loc), int(q)) for s, loc, q in json.loads(row.lines)],
        owner_key_id=owner,
        fulfilled_at_ms=None if fulfilled is None else datetime_to_ms(_utc(fulfilled)),
    )


def _utc(moment: datetime) -> datetime:
    """A datetime column's value in UTC (SQLite gives it back without its zone)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
