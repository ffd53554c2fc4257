"""Two stock domains with stock in both, for the tests of the workers per domain."""

from __future__ import annotations

from stocksync.domain.model import Location
from stocksync.store.redis_store import RedisStockStore

DEFAULT_STORE = "store-a"
EU_STORE = "store-eu"
EU = "eu"


async def two_domains(store: RedisStockStore, sku: str, changes: int = 3) -> None:
    """``store-a`` (default) and ``store-eu`` (domain ``eu``), each with a count of ``sku``
    and ``changes`` sales of one unit: 1 + ``changes`` events of the SKU in each domain."""
    await store.upsert_location(Location(DEFAULT_STORE, "A", "store", 52.5, 13.4, True, True))
    await store.upsert_location(Location(EU_STORE, "EU", "store", 48.8, 2.3, True, True, EU))
    for loc in (DEFAULT_STORE, EU_STORE):
        await store.set_count(sku, loc, 50)
        for i in range(changes):
            await store.adjust(
                sku, loc, -1, reason="sale", source="pos", source_event_id=f"{loc}-{i}"
            )
