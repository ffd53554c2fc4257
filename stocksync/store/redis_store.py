"""RedisStockStore: the authoritative stock and reservation state, one Lua script per change.

Built the same way in every process (API, workers, connectors, CLI) from :class:`Settings`,
so the configured retention, outbox cap and hold caps apply wherever a change is made.
"""

from __future__ import annotations

from stocksync.store.buckets import Buckets
from stocksync.store.inspection import Inspection
from stocksync.store.pools import Pools
from stocksync.store.reads import StoreReads
from stocksync.store.reservations import Reservations
from stocksync.store.returns import Returns
from stocksync.store.stock_changes import StockChanges
from stocksync.store.supplies import Supplies
from stocksync.store.transfers import Transfers


class RedisStockStore(
    StoreReads,
    StockChanges,
    Reservations,
    Pools,
    Buckets,
    Returns,
    Transfers,
    Supplies,
    Inspection,
):
    """Stock positions, locations, reservations, channel pools and the stock beyond the shelf
    (bucket moves, returns, transfers, incoming supply, the inspection queue) of one
    namespace in Redis.

    ``RedisStockStore(client, settings, observe=...)``: see :class:`ScriptStore`.
    """
