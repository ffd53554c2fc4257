"""A reservation's ledger row, computed from all of its recorded events.

The ledger copy may see a reservation's events re-delivered, reordered within a batch and
split across batches and concurrent writers. So the ``reservations`` row is not patched event
by event: after each batch it is recomputed from every event of the reservation the ledger
holds (``stock_movements``), which gives the same row whatever order they arrived in:

- ``state`` only moves forward: held < confirmed < ready < a terminal state, so the highest
  state seen is the newest and a terminal state is never left.
- ``expires_at`` is the deadline set by the newest transition. Transitions of one reservation
  can share a millisecond, so they are ordered by ``seq``: every transition emits an event on
  each line, and the events of one SKU are numbered in the order they happened. A terminal
  state clears the deadline, as in Redis.
- ``created_at`` is the earliest event time, ``updated_at`` the latest (Redis sets it on every
  transition, extension and move, not on an at-risk flag); ``lines``, ``customer_ref`` come
  from the hold event (until it arrives, the lines seen so far stand in), with the ``moved``
  events' deltas applied (a sum, so their order does not matter).
- ``at_risk`` holds when the newest ``at_risk`` event (a till sale left the hold short) is newer
  than the newest ``moved`` event (the hold was re-sourced, which clears the flag in Redis). A
  flag whose reservation's other events have not arrived yet leaves a placeholder row
  (``updated_at`` = the epoch) that they then fill in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from stocksync.domain.clock import EPOCH, ms_to_datetime
from stocksync.domain.events import RESERVATION_NON_STATE_KINDS, EventKind
from stocksync.domain.model import TERMINAL, State

TERMINAL_STATES = frozenset(EventKind(state.value) for state in TERMINAL)
# States only move forward; the terminal ones rank alike (only one of them is ever reached).
STATE_RANK: dict[str, int] = {
    EventKind.HELD: 0,
    EventKind.CONFIRMED: 1,
    EventKind.READY: 2,
    **{state: 3 for state in TERMINAL_STATES},
}


def opt_ms(value: str | None) -> datetime | None:
    return ms_to_datetime(int(value)) if value not in (None, "", "inf") else None


class ReservationEvent(NamedTuple):
    """One recorded event of a reservation (a ``stock_movements`` row of such a kind); a
    named tuple, as the ledger copy makes one per reservation event it writes."""

    kind: str
    sku: str
    location_id: str
    seq: int
    at: datetime
    channel: str
    qty: int
    extra: dict[str, str]  # the movement's details: exp, and a hold's order_details


def order_details(held: Iterable[dict[str, str]]) -> dict[str, str]:
    """The order's details (lines, fp, and cref, code, key when set) among the details of a
    reservation's ``held`` events: since layout 2 only the first line's event carries them;
    events written before carry them on every line. {} until that event has arrived."""
    return next((d for d in held if d.get("lines")), {})


def placeholder_row(at_risk: bool) -> dict[str, Any]:
    return {
        "channel": "",
        "state": State.HELD.value,
        "lines": "[]",
        "customer_ref": None,
        "created_at": EPOCH,
        "updated_at": EPOCH,
        "expires_at": None,
        "at_risk": at_risk,
    }


# Plain strings: comparing a kind with a str is cheaper than with the enum, once per event.
_AT_RISK, _MOVED, _HELD = EventKind.AT_RISK.value, EventKind.MOVED.value, EventKind.HELD.value
_RANK = {str(kind): rank for kind, rank in STATE_RANK.items()}
_NON_STATE = frozenset(str(kind) for kind in RESERVATION_NON_STATE_KINDS)
_TERMINAL = frozenset(str(kind) for kind in TERMINAL_STATES)


def reservation_row(all_events: Sequence[ReservationEvent]) -> dict[str, Any]:
    """Column values of a ``reservations`` row (without its key) from all its events."""
    flags = [e.at for e in all_events if e.kind == _AT_RISK]
    events = [e for e in all_events if e.kind != _AT_RISK]  # a flag is not a transition
    moves = [e.at for e in events if e.kind == _MOVED]
    at_risk = bool(flags) and (not moves or max(flags) > max(moves))
    if not events:
        return placeholder_row(at_risk)
    lines = {(e.sku, e.location_id): e.qty for e in events if e.kind != _MOVED}
    details = order_details(e.extra for e in events if e.kind == _HELD)
    if details:
        lines = _moved({(s, loc): int(q) for s, loc, q in json.loads(details["lines"])}, events)
    states = [e.kind for e in events if e.kind not in _NON_STATE]
    state = max(states, key=lambda s: (_RANK[s], s)) if states else _HELD
    # The newest transition: the latest event on one SKU (all transitions emit on each line).
    ref_sku = min(e.sku for e in events)
    newest = max((e for e in events if e.sku == ref_sku), key=lambda e: (e.seq, e.at))
    terminal = state in _TERMINAL or newest.kind in _TERMINAL
    times = [e.at for e in events]
    return {
        "channel": max(e.channel for e in events),
        "state": str(state),
        "lines": json.dumps([[s, loc, q] for (s, loc), q in sorted(lines.items())]),
        "customer_ref": details.get("cref") or None,
        "created_at": min(times),
        "updated_at": max(times),
        "expires_at": None if terminal else opt_ms(newest.extra.get("exp")),
        "at_risk": at_risk,
    }


def _moved(
    lines: dict[tuple[str, str], int], events: Sequence[ReservationEvent]
) -> dict[tuple[str, str], int]:
    """The hold's lines after its moves. A move emits -qty at the source and +qty at the
    target, so the sum does not depend on the order the events arrive in."""
    out = dict(lines)
    for e in events:
        if e.kind == _MOVED:
            sign = 1 if e.location_id == e.extra.get("to") else -1
            key = (e.sku, e.location_id)
            out[key] = out.get(key, 0) + sign * e.qty
    return {k: q for k, q in out.items() if q > 0}
