"""Rebuild a SKU's Redis state from the SQL ledger (DESIGN rule 6), per stock domain: a
domain's SKUs from the rows of its own ledger namespace."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from stocksync.domain.clock import datetime_to_ms
from stocksync.domain.errors import IdempotencyConflict
from stocksync.domain.events import DELTA_KINDS, EventKind
from stocksync.domain.model import ACTIVE
from stocksync.ledger.fold import order_details
from stocksync.ledger.tables import LedgerReservation, Movement
from stocksync.recovery import shelf_payload as shelf
from stocksync.store.recovery import RecoveryOps
from stocksync.store.redis_store import RedisStockStore

log = logging.getLogger(__name__)

ACTIVE_STATES = sorted(state.value for state in ACTIVE)
_SETS_SAFETY = frozenset({EventKind.COUNTED, EventKind.POSITION_MOVED_IN})


@dataclass(frozen=True)
class RebuildResult:
    sku: str
    seq: int
    positions: int
    reservations: int


def _ms(moment: datetime | None) -> int:
    return 0 if moment is None else datetime_to_ms(moment)


def _details(row: Movement) -> dict[str, Any]:
    return json.loads(row.details) if row.details else {}


@dataclass(frozen=True)
class LedgerPayload:
    """What rebuild.lua needs to restore one SKU."""

    seq: int
    positions: list[list[Any]]
    reservations: list[dict[str, Any]]  # active in the ledger
    finished: list[dict[str, Any]]  # terminal in the ledger
    idempotency: list[list[Any]]
    # Stock beyond the shelf (stocksync.recovery.shelf_payload): every ledger location's
    # arrivals ([loc, [field, value, ...]], empty: none), and the SKU's lines of transfers,
    # returns and returned units, merged into those records.
    arrivals: list[list[Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    returns: list[dict[str, Any]] = field(default_factory=list)
    returned: list[dict[str, Any]] = field(default_factory=list)


def ledger_payload(
    session: Session, namespace: str, sku: str, retention_seconds: int = 7 * 24 * 3600
) -> LedgerPayload:
    """The SKU's seq, positions, reservations and idempotency records as the ledger has them."""
    movements = list(
        session.exec(
            select(Movement)
            .where(Movement.namespace == namespace, Movement.sku == sku)
            .order_by(col(Movement.seq))
        ).all()
    )
    by_location: dict[str, list[Movement]] = {}
    for m in movements:
        by_location.setdefault(m.location_id, []).append(m)
    rows = shelf.decoded(movements)
    rows_at: dict[str, list[shelf.Row]] = {}
    for r in rows:
        rows_at.setdefault(r.m.location_id, []).append(r)
    reservations = _ledger_reservations(
        session, namespace, _reservation_ids(session, namespace, sku)
    )
    since_ms = int(time.time() * 1000) - retention_seconds * 1000
    return LedgerPayload(
        seq=max((m.seq for m in movements), default=0),
        positions=[
            [*position, *shelf.buckets(rows_at[loc])]
            for loc, moved in sorted(by_location.items())
            if (position := _position(loc, moved)) is not None
        ],
        reservations=[_active(session, r) for r in reservations if r.state in ACTIVE_STATES],
        # Reservations the ledger says ended: a stale active copy in Redis must be closed.
        finished=[
            {"id": r.reservation_id, "state": r.state, "updated_at": _ms(r.updated_at)}
            for r in reservations
            if r.state not in ACTIVE_STATES
        ],
        idempotency=_idempotency(movements, since_ms),
        arrivals=[[loc, shelf.arrivals(at)] for loc, at in sorted(rows_at.items())],
        transfers=shelf.transfer_lines(rows, since_ms),
        returns=shelf.return_lines(rows, since_ms),
        returned=shelf.returned_units(rows, since_ms),
    )


def _position(location: str, rows: list[Movement]) -> list[Any] | None:
    """The position as rebuild.lua restores it; None when no movement of the location carries
    its numbers (only flags or notices reached the ledger): there is nothing to restore."""
    carrying = [m for m in rows if m.on_hand is not None]
    if not carrying or carrying[-1].kind == EventKind.POSITION_MOVED_OUT:
        return None  # nothing to restore, or the position moved to another domain
    last = carrying[-1]
    # A count sets the safety stock and the count's time; so does a move into this domain
    # (the source's newest count came along).
    counts = [m for m in rows if m.kind in _SETS_SAFETY]
    newest = _details(counts[-1]) if counts else {}
    count_as_of = int(newest.get("as_of") or newest.get("counted_as_of") or 0)
    safety = int(newest.get("safety", 0))
    deltas = []
    for m in rows:  # a bucket event that leaves on_hand as it was recorded no delta
        if m.kind in DELTA_KINDS and m.d_on_hand and _ms(m.occurred_at) > count_as_of:
            deltas.append([_ms(m.occurred_at), m.seq, m.d_on_hand])
    return [location, last.on_hand, last.reserved or 0, safety, count_as_of, deltas]


def _reservation_ids(session: Session, namespace: str, sku: str) -> list[str]:
    return [
        rid
        for rid in session.exec(
            select(Movement.reservation_id)
            .where(Movement.namespace == namespace, Movement.sku == sku)
            .where(col(Movement.reservation_id).is_not(None))
            .distinct()
        ).all()
        if rid is not None
    ]


def _idempotency(movements: list[Movement], since_ms: int) -> list[list[Any]]:
    """(source, source_event_id) records of stock changes, as adjust/set_count keep them."""
    out = []
    for m in movements:
        fp = _details(m).get("fp")
        if m.source_event_id and fp and _ms(m.recorded_at) >= since_ms:
            applied = 0 if m.kind.endswith("_stale") else 1
            safety = int(_details(m).get("safety", 0))
            out.append(
                [
                    m.source,
                    m.source_event_id,
                    fp,
                    applied,
                    m.on_hand or 0,
                    m.reserved or 0,
                    safety,
                    m.seq,
                ]
            )
    return out


def _ledger_reservations(
    session: Session, namespace: str, ids: list[str]
) -> list[LedgerReservation]:
    if not ids:
        return []
    return list(
        session.exec(
            select(LedgerReservation).where(
                LedgerReservation.namespace == namespace,
                col(LedgerReservation.reservation_id).in_(ids),
            )
        ).all()
    )


def _active(session: Session, r: LedgerReservation) -> dict[str, Any]:
    """An active reservation as rebuild.lua restores it (fp, code, key: order_details)."""
    held = session.exec(
        select(Movement).where(
            Movement.namespace == r.namespace,
            Movement.reservation_id == r.reservation_id,
            Movement.kind == EventKind.HELD.value,
        )
    ).all()  # one per line: a bounded number
    details = order_details(_details(m) for m in held)
    return {
        "id": r.reservation_id,
        "fp": details.get("fp", ""),
        "channel": r.channel,
        "state": r.state,
        "lines": json.loads(r.lines),
        "created_at": _ms(r.created_at),
        "updated_at": _ms(r.updated_at),
        "expires_at": _ms(r.expires_at),
        "customer_ref": r.customer_ref or "",
        "at_risk": r.at_risk,
        "code": details.get("code", ""),
        "key": details.get("key", ""),
    }


async def rebuild(
    ops: RecoveryOps,
    engine: Engine,
    namespace: str,
    skus: list[str] | None = None,
    retention_seconds: int = 7 * 24 * 3600,
) -> list[RebuildResult]:
    """Rebuild the given SKUs (default: every frozen SKU) from the ledger."""
    targets = skus if skus is not None else sorted(await ops.regressed())
    results = []
    for sku in targets:
        with Session(engine) as session:
            payload = ledger_payload(session, namespace, sku, retention_seconds)
        await _claim(ops, payload)
        n_pos, n_res = await ops.rebuild_sku(
            sku,
            payload.seq,
            payload.positions,
            payload.reservations,
            payload.finished,
            payload.idempotency,
            arrivals=payload.arrivals,
            transfers=payload.transfers,
            returns=payload.returns,
            returned=payload.returned,
        )
        results.append(RebuildResult(sku, payload.seq, n_pos, n_res))
    return results


async def _claim(ops: RecoveryOps, payload: LedgerPayload) -> None:
    """Claim the rebuilt reservations' ids for the domain in the namespace's directory (in a
    slot of its own, so not by the rebuild script): a Redis restored from an older file lost
    the claims made since, and without one a reservation is found by no transition."""
    ids = [r["id"] for r in payload.reservations] + [r["id"] for r in payload.finished]
    for reservation_id in ids:
        try:
            await ops.store.claim_reservation(str(reservation_id), ops.domain)
        except IdempotencyConflict:
            log.error(
                "reservation %s is claimed by another domain; rebuilt in %s all the same",
                reservation_id,
                ops.domain,
            )


@dataclass(frozen=True)
class DomainRebuild:
    domain: str
    result: RebuildResult


async def rebuild_domains(
    store: RedisStockStore,
    engine: Engine,
    skus: list[str] | None = None,
    retention_seconds: int = 7 * 24 * 3600,
) -> list[DomainRebuild]:
    """:func:`rebuild` in every domain, each from its own ledger namespace: every frozen SKU
    of each domain, or the given SKUs in each domain that has them (in Redis or the ledger; a
    SKU is rebuilt nowhere it never was)."""
    done: list[DomainRebuild] = []
    for domain in await store.domains(fresh=True):
        ops = RecoveryOps(store, domain)
        namespace = ops.keys.ledger_namespace
        targets = None
        if skus is not None:
            targets = [sku for sku in skus if await _known(ops, engine, namespace, sku)]
        for result in await rebuild(ops, engine, namespace, targets, retention_seconds):
            done.append(DomainRebuild(domain, result))
    return done


async def _known(ops: RecoveryOps, engine: Engine, namespace: str, sku: str) -> bool:
    if await ops.store.client.hexists(ops.keys.seq, sku):
        return True

    def in_ledger() -> bool:
        with Session(engine) as session:
            found = session.exec(
                select(Movement.seq).where(Movement.namespace == namespace, Movement.sku == sku)
            ).first()
            return found is not None

    return await anyio.to_thread.run_sync(in_ledger)
