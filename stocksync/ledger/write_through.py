"""Write-through for sales: a fulfilment is acknowledged only once its ledger rows commit."""

from __future__ import annotations

from collections.abc import Sequence

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from stocksync.domain.errors import LedgerUnavailable
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.store.outbox import OutboxEvent


async def write_through(ledger: SqlLedger, events: Sequence[OutboxEvent]) -> int:
    """Record a sale's outbox events in the ledger now (idempotent: the ledger copy may too).

    The events come from the fulfilment's reply, not from the stream, so a sale reaches the
    ledger even when ``OUTBOX_MAXLEN`` trimmed its entries first. Only the movements are
    written here (the facts the sale must not lose); the reservation's ledger row follows when
    the ledger copy folds them.
    """
    try:
        return await anyio.to_thread.run_sync(ledger.record_movements, events)
    except SQLAlchemyError as exc:
        raise LedgerUnavailable(
            "the sale is recorded in Redis but the ledger could not be written; retry the "
            "same call to get an acknowledgement (it will not be applied twice)"
        ) from exc
