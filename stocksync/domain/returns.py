"""Returns and bucket moves (DESIGN "stock beyond the shelf"): their values, no I/O."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from stocksync.domain.model import Disposition, Line, Position


@dataclass(frozen=True)
class ReturnLine:
    """Units of a SKU coming back at a location, and what they become there."""

    sku: str
    location_id: str
    qty: int
    disposition: Disposition


@dataclass(frozen=True)
class StockReturn:
    """A return as recorded: linked to a fulfilled reservation, or an unlinked till return
    (``reservation_id`` None)."""

    return_id: str
    reservation_id: str | None
    lines: list[ReturnLine]
    created_at_ms: int
    replayed: bool = False  # this call found the same return already recorded


@dataclass(frozen=True)
class ArchivedSale:
    """A reservation Redis has pruned (after the retention), as the ledger keeps it: what a
    return of it needs to know."""

    ledger_namespace: str  # where the ledger keeps it: names its stock domain
    state: str
    lines: list[Line]
    owner_key_id: str | None  # the API key that created it
    fulfilled_at_ms: int | None  # None: never fulfilled


@dataclass(frozen=True)
class MoveResult:
    """A move between a position's buckets: the position after it (on a replay, as it was
    after the original move) and how many holds it newly flagged at risk."""

    position: Position
    applied: bool
    replayed: bool
    seq: int
    at_risk_reservations: int = 0


def normalize_return_lines(lines: Iterable[ReturnLine]) -> list[ReturnLine]:
    """The lines in a fixed order (SKU, then location), so one return's fingerprint does not
    depend on the order its lines were sent in. A (sku, location) comes once per return:
    raises ValueError otherwise."""
    ordered = sorted(lines, key=lambda ln: (ln.sku, ln.location_id))
    for a, b in pairwise(ordered):
        if (a.sku, a.location_id) == (b.sku, b.location_id):
            raise ValueError(f"{a.sku!r} at {a.location_id!r} comes more than once")
    return ordered


def return_fingerprint(
    reservation_id: str | None,
    lines: list[ReturnLine],
    source: str,
    occurred_at_ms: int | None = None,
) -> str:
    """A digest of what a return asks for (its normalized lines, and when a source says it
    happened), to tell a retry of the same return from another return that reuses its id."""
    body: dict[str, object] = {
        "reservation_id": reservation_id,
        "lines": [[ln.sku, ln.location_id, ln.qty, ln.disposition.value] for ln in lines],
        "source": source,
    }
    if occurred_at_ms is not None:
        body["occurred_at"] = occurred_at_ms
    canonical = json.dumps(body, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
