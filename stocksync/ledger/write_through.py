"""Write-through for sales: a fulfilment is acknowledged only once its ledger rows commit."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from stocksync.domain.errors import LedgerUnavailable
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.store.outbox import Outbox

log = logging.getLogger(__name__)


async def write_through(outbox: Outbox, ledger: SqlLedger, event_ids: Sequence[str]) -> int:
    """Record these outbox events in the ledger now (idempotent: the ledger copy may too).

    An event no longer in the stream was trimmed, which the ledger copy only does after it
    committed it, so it is durable already. Only the movements are written here (the facts the
    sale must not lose); the reservation's ledger row follows when the ledger copy folds them.
    """
    events, gone = await outbox.read(event_ids)
    if gone:
        log.info("write-through: %d event(s) already trimmed from the outbox", len(gone))
    try:
        return await anyio.to_thread.run_sync(ledger.record_movements, events)
    except SQLAlchemyError as exc:
        raise LedgerUnavailable(
            "the sale is recorded in Redis but the ledger could not be written; retry the "
            "same call to get an acknowledgement (it will not be applied twice)"
        ) from exc
