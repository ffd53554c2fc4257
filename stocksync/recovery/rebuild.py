"""Rebuild a SKU's Redis state from the SQL ledger (DESIGN rule 6)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from stocksync.ledger.tables import LedgerReservation, Movement
from stocksync.store.redis_store import RecoveryOps

ACTIVE_STATES = ("held", "confirmed", "ready")
# Physical deltas that the as-of rule adds to a count taken before them.
DELTA_KINDS = ("adjusted", "fulfilled")
DELTA_WINDOW_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class RebuildResult:
    sku: str
    seq: int
    positions: int
    reservations: int


def _ms(moment: datetime | None) -> int:
    return 0 if moment is None else int(moment.timestamp() * 1000)


def _details(row: Movement) -> dict[str, Any]:
    return json.loads(row.details) if row.details else {}


def ledger_payload(
    session: Session, namespace: str, sku: str
) -> tuple[int, list[list[Any]], list[dict[str, Any]]]:
    """The SKU's seq, positions and active reservations as the ledger knows them."""
    movements = session.exec(
        select(Movement)
        .where(Movement.namespace == namespace, Movement.sku == sku)
        .order_by(col(Movement.seq))
    ).all()
    seq = max((m.seq for m in movements), default=0)
    by_location: dict[str, list[Movement]] = {}
    for m in movements:
        by_location.setdefault(m.location_id, []).append(m)
    positions = [_position(location, rows) for location, rows in sorted(by_location.items())]
    reservations = _reservations(session, namespace, sku)
    return seq, positions, reservations


def _position(location: str, rows: list[Movement]) -> list[Any]:
    last = [m for m in rows if m.on_hand is not None][-1]
    counts = [m for m in rows if m.kind == "counted"]
    count_as_of = int(_details(counts[-1]).get("as_of", 0)) if counts else 0
    safety = int(_details(counts[-1]).get("safety", 0)) if counts else 0
    deltas = []
    for m in rows:
        if m.kind in DELTA_KINDS and _ms(m.occurred_at) > count_as_of:
            deltas.append([_ms(m.occurred_at), m.seq, m.d_on_hand])
    return [location, last.on_hand, last.reserved or 0, safety, count_as_of, deltas]


def _reservations(session: Session, namespace: str, sku: str) -> list[dict[str, Any]]:
    ids = session.exec(
        select(Movement.reservation_id)
        .where(Movement.namespace == namespace, Movement.sku == sku)
        .where(col(Movement.reservation_id).is_not(None))
        .distinct()
    ).all()
    if not ids:
        return []
    rows = session.exec(
        select(LedgerReservation).where(
            LedgerReservation.namespace == namespace,
            col(LedgerReservation.reservation_id).in_(ids),
            col(LedgerReservation.state).in_(ACTIVE_STATES),
        )
    ).all()
    out = []
    for r in rows:
        held = session.exec(
            select(Movement).where(
                Movement.namespace == namespace,
                Movement.reservation_id == r.reservation_id,
                Movement.kind == "held",
            )
        ).first()
        out.append(
            {
                "id": r.reservation_id,
                "fp": _details(held).get("fp", "") if held else "",
                "channel": r.channel,
                "state": r.state,
                "lines": json.loads(r.lines),
                "created_at": _ms(r.created_at),
                "updated_at": _ms(r.updated_at),
                "expires_at": _ms(r.expires_at),
                "customer_ref": r.customer_ref or "",
                "at_risk": r.at_risk,
            }
        )
    return out


async def rebuild(
    ops: RecoveryOps, engine: Engine, namespace: str, skus: list[str] | None = None
) -> list[RebuildResult]:
    """Rebuild the given SKUs (default: every frozen SKU) from the ledger."""
    targets = skus if skus is not None else sorted(await ops.regressed())
    results = []
    for sku in targets:
        with Session(engine) as session:
            seq, positions, reservations = ledger_payload(session, namespace, sku)
        n_pos, n_res = await ops.rebuild_sku(sku, seq, positions, reservations)
        results.append(RebuildResult(sku, seq, n_pos, n_res))
    return results
