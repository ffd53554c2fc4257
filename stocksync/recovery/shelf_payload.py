"""What a rebuild restores of the stock beyond the shelf, from one SKU's ledger rows.

A position's buckets (damaged, quality_control, in_transit) come from the newest event that
states them (every bucket event carries the values after it, so does a rebuild's own event);
its arrivals from the supplies' events (the newest state of each) and the transfers shipped to
it that no receipt or cancel closed. Transfer and return records span SKUs: each SKU's rows
give its own line of them, which rebuild.lua merges into the record (docs/ledger-buckets.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stocksync.domain.clock import datetime_to_ms
from stocksync.domain.events import EventKind
from stocksync.domain.model import TransferState
from stocksync.ledger.tables import Movement

BUCKET_VALUES = ("damaged", "quality_control", "in_transit")
# A position that left or entered the stock domain starts over: the move carries no bucket and
# no arrival (stocksync.store.domain_moves).
_MOVED = frozenset({EventKind.POSITION_MOVED_OUT, EventKind.POSITION_MOVED_IN})
_TRANSFER_STATE = {
    EventKind.TRANSFER_RECEIVED: TransferState.RECEIVED,
    EventKind.TRANSFER_CANCELLED: TransferState.CANCELLED,
}
_CLOSES_ARRIVAL = frozenset(_TRANSFER_STATE)


@dataclass(frozen=True)
class Row:
    """A movement with its details decoded once."""

    m: Movement
    details: dict[str, Any]

    @property
    def at_ms(self) -> int:
        """When the engine applied it (``details['at']`` when occurred_at was given)."""
        return int(self.details.get("at") or datetime_to_ms(self.m.occurred_at))


def decoded(movements: Iterable[Movement]) -> list[Row]:
    return [Row(m, json.loads(m.details) if m.details else {}) for m in movements]


def _since_move(rows: Sequence[Row]) -> Sequence[Row]:
    """The rows after the position's newest move between stock domains."""
    for i in range(len(rows) - 1, -1, -1):
        if rows[i].m.kind in _MOVED:
            return rows[i + 1 :]
    return rows


def buckets(rows: Sequence[Row]) -> list[int]:
    """damaged, quality_control, in_transit of a position (rows in seq order)."""
    for r in reversed(_since_move(rows)):
        if all(name in r.details for name in BUCKET_VALUES):
            return [int(r.details[name] or 0) for name in BUCKET_VALUES]
    return [0, 0, 0]


def arrivals(rows: Sequence[Row]) -> list[str]:
    """A position's arrivals hash as a flat field/value list (Keys.arrivals: ``s:<supply>``,
    ``t:<transfer>`` -> ``<qty>|<expected ms or ''>``), in field order."""
    found: dict[str, tuple[int, str]] = {}
    for r in _since_move(rows):
        kind, d = r.m.kind, r.details
        if kind == EventKind.INCOMING_SET:
            found["s:" + d["supply"]] = (int(r.m.qty or 0), str(d.get("exp", "")))
        elif kind == EventKind.INCOMING_REMOVED:
            found.pop("s:" + d["supply"], None)
        elif kind == EventKind.INCOMING_CONSUMED:
            field, left = "s:" + d["supply"], int(d.get("left") or 0)
            if left > 0:  # the rest keeps its expected time
                found[field] = (left, found.get(field, (0, str(d.get("exp", ""))))[1])
            else:
                found.pop(field, None)
        elif kind == EventKind.TRANSFER_SHIPPED and r.m.location_id == d.get("to"):
            units = r.m.d_in_transit or int(r.m.qty or 0)
            found["t:" + d["xfer"]] = (units, str(d.get("exp", "")))
        elif kind in _CLOSES_ARRIVAL:
            found.pop("t:" + d["xfer"], None)
    return [v for field in sorted(found) for v in (field, f"{found[field][0]}|{found[field][1]}")]


def transfer_lines(rows: Sequence[Row], since_ms: int) -> list[dict[str, Any]]:
    """This SKU's line of each transfer it is in, with the transfer's fields as its events
    state them; a terminal transfer last changed before ``since_ms`` is left out (its record
    would have expired), as is one whose shipment is not in the ledger."""
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        xfer = r.details.get("xfer")
        kind = r.m.kind
        if not xfer or kind not in {EventKind.TRANSFER_SHIPPED, *_TRANSFER_STATE}:
            continue
        t = found.setdefault(
            xfer,
            {"id": xfer, "state": TransferState.SHIPPED.value, "shipped": 0, "received": 0}
            | {"from": "", "to": "", "exp": "", "created_at": r.at_ms, "fp": ""},
        )
        t["updated_at"] = r.at_ms
        if kind == EventKind.TRANSFER_SHIPPED:
            t.update(created_at=r.at_ms, exp=str(r.details.get("exp", "")))
            t.update({"from": r.details.get("from", ""), "to": r.details.get("to", "")})
            t["fp"] = r.details.get("fp") or t["fp"]
            t["shipped"] = int(r.m.qty or 0)  # at the source and at the target alike
        else:
            t["state"] = _TRANSFER_STATE[EventKind(kind)].value
            if kind == EventKind.TRANSFER_RECEIVED:
                t["received"] = int(r.m.qty or 0)
                t["shipped"] = int(r.details.get("shipped") or t["shipped"])
    return [
        t
        for t in found.values()
        if t["from"] and (t["state"] == TransferState.SHIPPED or t["updated_at"] >= since_ms)
    ]


def return_lines(rows: Sequence[Row], since_ms: int) -> list[dict[str, Any]]:
    """This SKU's lines of each return made since ``since_ms`` (older ones have expired)."""
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        ret = r.details.get("ret")
        if r.m.kind != EventKind.RETURNED or not ret or r.at_ms < since_ms:
            continue
        record = found.setdefault(
            ret,
            {"id": ret, "res": r.m.reservation_id or "", "created_at": r.at_ms}
            | {"actor": r.m.actor or "", "fp": r.details.get("fp", ""), "lines": []},
        )
        line = [r.m.sku, r.m.location_id, int(r.m.qty or 0), r.details.get("disp", "")]
        record["lines"].append(line)
    return list(found.values())


def returned_units(rows: Sequence[Row], since_ms: int) -> list[dict[str, Any]]:
    """Per reservation with a return of this SKU: the SKU's units returned in all (what a
    further return is checked against) and the return ids, when its newest return is recent
    enough that the record would still be kept (``since_ms``)."""
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        res = r.m.reservation_id
        if r.m.kind != EventKind.RETURNED or not res:
            continue
        entry = found.setdefault(res, {"res": res, "units": 0, "ids": [], "newest": 0})
        entry["units"] += int(r.m.qty or 0)
        if r.details.get("ret") and r.details["ret"] not in entry["ids"]:
            entry["ids"].append(r.details["ret"])
        entry["newest"] = max(entry["newest"], r.at_ms)
    return [
        {"res": e["res"], "units": e["units"], "ids": e["ids"]}
        for e in found.values()
        if e["newest"] >= since_ms
    ]
