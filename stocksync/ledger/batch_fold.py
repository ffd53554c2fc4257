"""A batch's reservation events folded into their ``reservations`` rows without reading back
every event the ledger holds.

:func:`stocksync.ledger.fold.reservation_row` computes a row from all of a reservation's events;
reading those back for every reservation a batch touches was most of the ledger copy's time.
So each touched reservation takes the cheapest path that gives the same row:

1. **complete**: every event of it the ledger holds is in this batch (a reservation born in
   the batch) -> ``reservation_row`` of the batch's events;
2. **merge**: the row exists, and the batch carries only transitions and extensions on lines
   the row already lists (no hold, move or flag, which change lines, reference or flag): the
   state is the furthest of the row's and the batch's (states only move forward), created and
   updated the earliest and the latest, the channel the greatest, the rest kept. The deadline
   is the batch's newest event's when that is the newest on the reference SKU (the ledger's
   summary says which seq is), else the row's (a newer recorded event set it). Every operation
   is a max, a min or "keep", so duplicates and arrival order do not change the result;
3. otherwise (a hold or move arriving late, a flag, only a placeholder row): ``None``, and the
   caller recomputes the row from every recorded event, as before.

The summary (per reservation and SKU: the events recorded, the highest non-flag ``seq``) is read
after the row is locked, so it includes what a concurrent writer committed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stocksync.domain.clock import EPOCH
from stocksync.domain.events import RESERVATION_NON_STATE_KINDS, EventKind
from stocksync.ledger.fold import (
    STATE_RANK,
    TERMINAL_STATES,
    ReservationEvent,
    opt_ms,
    reservation_row,
)

# per SKU of a reservation: (events recorded of it, the highest seq of a non-flag event or None)
Recorded = Mapping[str, tuple[int, int | None]]

# A `reservations` row as the batch writers read it back (lock) and merge into.
RESERVATION_COLUMNS = (
    "reservation_id",
    "channel",
    "state",
    "lines",
    "customer_ref",
    "created_at",
    "updated_at",
    "expires_at",
    "at_risk",
)


@dataclass
class Locked:
    """A chunk of a batch's reservations once their rows are locked: the ledger's summary of
    each (:data:`Recorded`), the rows folded from the batch alone (computed while the
    database locked them), and the current rows, read on demand (most are not needed)."""

    recorded: Mapping[str, Recorded]
    speculated: Mapping[str, dict[str, Any]]
    current: Callable[[str], Mapping[str, Any]]


_NEEDS_ALL = frozenset({EventKind.HELD, EventKind.MOVED, EventKind.AT_RISK})
_NON_STATE = frozenset(k.value for k in RESERVATION_NON_STATE_KINDS)
_TERMINAL = frozenset(k.value for k in TERMINAL_STATES)


def _rank(kind: str) -> tuple[int, str]:
    return STATE_RANK[kind], kind


def complete(events: Sequence[ReservationEvent], recorded: Recorded) -> bool:
    """Every event of the reservation the ledger holds is among ``events`` (this batch's, each
    once): its row is ``reservation_row(events)``, whatever the row holds now."""
    return sum(count for count, _ in recorded.values()) == len(events)


def fold_batch(
    current: Mapping[Any, Any], events: Sequence[ReservationEvent], recorded: Recorded
) -> dict[str, Any] | None:
    """The row after ``events`` (this batch's, each once), from the ``current`` row and the
    ledger's summary; None when only every recorded event can tell."""
    if complete(events, recorded):
        return reservation_row(events)
    if current["updated_at"] == EPOCH:  # a placeholder: nothing but flags folded yet
        return None
    lines = {(sku, loc): qty for sku, loc, qty in json.loads(current["lines"])}
    for e in events:
        if e.kind in _NEEDS_ALL or lines.get((e.sku, e.location_id)) != e.qty:
            return None
    ref_sku = min(sku for sku, (_, top) in recorded.items() if top is not None)
    top = recorded[ref_sku][1]
    newest = next((e for e in events if e.sku == ref_sku and e.seq == top), None)
    state = max(
        (current["state"], *(e.kind for e in events if e.kind not in _NON_STATE)), key=_rank
    )
    terminal = state in _TERMINAL
    if newest is None:
        expires_at = None if terminal else current["expires_at"]
    else:
        terminal = terminal or newest.kind in _TERMINAL
        expires_at = None if terminal else opt_ms(newest.extra.get("exp"))
    return {
        "channel": max([current["channel"], *(e.channel for e in events)]),
        "state": str(state),
        "lines": current["lines"],
        "customer_ref": current["customer_ref"],
        "created_at": min([current["created_at"], *(e.at for e in events)]),
        "updated_at": max([current["updated_at"], *(e.at for e in events)]),
        "expires_at": expires_at,
        "at_risk": bool(current["at_risk"]),
    }


def changed(current: Mapping[Any, Any], new: Mapping[str, Any]) -> bool:
    return any(current[k] != v for k, v in new.items())
