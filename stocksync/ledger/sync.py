"""Write-through for sales: a fulfilment is acknowledged only once its ledger rows commit."""

from __future__ import annotations

from collections.abc import Sequence

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from stocksync.domain.errors import LedgerUnavailable
from stocksync.ledger.events import parse_event
from stocksync.ledger.writer import SqlLedger
from stocksync.store.redis_store import RedisStockStore


async def write_through(
    store: RedisStockStore, ledger: SqlLedger, namespace: str, event_ids: Sequence[str]
) -> int:
    """Record these outbox events in the ledger now (idempotent: the writer may too).

    An event no longer in the stream was trimmed, which only happens after the ledger writer
    committed it, so it is durable already. Only the movements are written here (the facts the
    sale must not lose); the reservation's ledger row follows when the writer folds them.
    """
    async with store.client.pipeline(transaction=False) as pipe:
        for event_id in event_ids:
            pipe.xrange(store.keys.outbox, event_id, event_id)
        found = await pipe.execute()
    events = [parse_event(namespace, sid, fields) for entries in found for sid, fields in entries]
    try:
        return await anyio.to_thread.run_sync(ledger.record_movements, events)
    except SQLAlchemyError as exc:
        raise LedgerUnavailable(
            "the sale is recorded in Redis but the ledger could not be written; retry the "
            "same call to get an acknowledgement (it will not be applied twice)"
        ) from exc
