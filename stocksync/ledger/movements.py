"""The ``stock_movements`` row of each outbox event (the ledger's durable facts)."""

from __future__ import annotations

import json
from typing import Any

from stocksync.domain.clock import ms_to_datetime
from stocksync.ledger.tables import utcnow
from stocksync.store.outbox import OutboxEvent

# Fields that have a column of their own in stock_movements; the rest goes to `details` (a
# count's `as_of` too: it becomes `occurred_at`, and the rebuild reads it from `details`).
_COLUMNS = frozenset(
    {"res", "ch", "qty", "d_on_hand", "d_reserved", "on_hand", "reserved", "src", "src_id"}
    | {"reason", "occurred_at", "actor"}
)


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
        "actor": f.get("actor") or None,
        "occurred_at": ms_to_datetime(occurred if occurred is not None else event.at_ms),
        "recorded_at": utcnow(),
        "details": json.dumps(details, sort_keys=True, separators=(",", ":")) if details else None,
    }
