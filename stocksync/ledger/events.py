"""Outbox events as the ledger reads them, and the ``stock_movements`` row of each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stocksync.ledger.fold import ms_to_datetime
from stocksync.ledger.tables import utcnow

_HEADER = frozenset({"kind", "sku", "loc", "seq", "at"})
# Fields that have a column of their own in stock_movements; the rest goes to `details` (a
# count's `as_of` too: it becomes `occurred_at`, and the rebuild reads it from `details`).
_COLUMNS = frozenset(
    {"res", "ch", "qty", "d_on_hand", "d_reserved", "on_hand", "reserved", "src", "src_id"}
    | {"reason", "occurred_at"}
)


@dataclass(frozen=True)
class OutboxEvent:
    """One entry of a namespace's outbox stream."""

    namespace: str
    stream_id: str
    kind: str
    sku: str  # '' for events that are not about a SKU (location_upserted)
    location_id: str
    seq: int  # per-SKU sequence number; 0 when sku is ''
    at_ms: int  # Redis server time of the script that emitted it
    fields: dict[str, str]  # every other field, as strings

    @property
    def event_id(self) -> str:
        return f"{self.namespace}/{self.stream_id}"

    @property
    def at(self) -> datetime:
        return ms_to_datetime(self.at_ms)

    @property
    def order(self) -> tuple[int, int]:
        """Position in the stream (stream ids are ``ms-counter``)."""
        ms, _, counter = self.stream_id.partition("-")
        return int(ms), int(counter or 0)


def parse_event(namespace: str, stream_id: str, fields: dict[str, str]) -> OutboxEvent:
    """An outbox entry as read from the stream (decoded field/value pairs)."""
    try:
        return OutboxEvent(
            namespace=namespace,
            stream_id=stream_id,
            kind=fields["kind"],
            sku=fields["sku"],
            location_id=fields["loc"],
            seq=int(fields["seq"]),
            at_ms=int(fields["at"]),
            fields={k: v for k, v in fields.items() if k not in _HEADER},
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"malformed outbox entry {stream_id}: {fields!r}") from exc


def _int(fields: dict[str, str], name: str) -> int | None:
    value = fields.get(name)
    return int(value) if value not in (None, "") else None


def movement_row(event: OutboxEvent) -> dict[str, Any]:
    """The ``stock_movements`` row of a SKU event."""
    f = event.fields
    details = {k: v for k, v in f.items() if k not in _COLUMNS}
    occurred = _int(f, "occurred_at")
    if occurred is None:
        occurred = _int(f, "as_of")
    if occurred is not None:
        details["at"] = str(event.at_ms)  # when the engine applied it
    return {
        "event_id": event.event_id,
        "namespace": event.namespace,
        "kind": event.kind,
        "sku": event.sku,
        "location_id": event.location_id,
        "seq": event.seq,
        "reservation_id": f.get("res") or None,
        "channel": f.get("ch") or None,
        "qty": _int(f, "qty"),
        "d_on_hand": _int(f, "d_on_hand") or 0,
        "d_reserved": _int(f, "d_reserved") or 0,
        "on_hand": _int(f, "on_hand"),
        "reserved": _int(f, "reserved"),
        "source": f.get("src") or None,
        "source_event_id": f.get("src_id") or None,
        "reason": f.get("reason") or None,
        "occurred_at": ms_to_datetime(occurred if occurred is not None else event.at_ms),
        "recorded_at": utcnow(),
        "details": json.dumps(details, sort_keys=True, separators=(",", ":")) if details else None,
    }
