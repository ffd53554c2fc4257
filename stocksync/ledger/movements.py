"""The ``stock_movements`` row of one outbox event, as a dict (for readers and benchmarks; the
ledger's writers build tuples in :mod:`stocksync.ledger.rows`, from the same code)."""

from __future__ import annotations

from typing import Any

from stocksync.domain.clock import ms_to_datetime
from stocksync.ledger.rows import MOVEMENT_COLUMNS, build, entries_of
from stocksync.ledger.tables import utcnow
from stocksync.store.outbox import OutboxEvent


def movement_row(event: OutboxEvent) -> dict[str, Any]:
    """The ``stock_movements`` row of a SKU event."""
    ((namespace, entries),) = entries_of([event]).items()
    (row,) = build(namespace, entries, ms_to_datetime, utcnow()).movements
    return dict(zip(MOVEMENT_COLUMNS, row, strict=True))
