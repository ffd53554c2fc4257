"""A channel pool as the Shopify push sees it: its domain, its locations, its offered units.

The push needs three things of a pool: the stock domain its events are in, the locations
whose changes alter its number, and Σ offered per SKU (offered = max(0, available - buffer)
per location). The store answers them: ``get_pool`` and ``pool_availability_many`` (one script
call per page of SKUs, the buffers read inside it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stocksync.domain.errors import NotFound
from stocksync.store.redis_store import RedisStockStore


@dataclass(frozen=True)
class PoolView:
    pool_id: str
    domain: str
    locations: tuple[tuple[str, int, int], ...]  # (location_id, priority, buffer)

    @property
    def location_ids(self) -> frozenset[str]:
        return frozenset(location_id for location_id, _, _ in self.locations)


class UnknownPool(ValueError):
    """A pool the mapping names does not exist (a configuration error: refuse to start)."""


async def get_pool(store: RedisStockStore, pool_id: str) -> PoolView | None:
    """The pool's domain and locations; None when no pool of that id exists."""
    pool = await store.get_pool(pool_id)
    if pool is None:
        return None
    return PoolView(
        pool.pool_id,
        pool.domain,
        tuple((p.location_id, p.priority, p.buffer) for p in pool.locations),
    )


async def pool_available_many(
    store: RedisStockStore, pool: PoolView, skus: Sequence[str]
) -> dict[str, int]:
    """Σ offered per SKU over the pool's locations, with the buffers as configured now (a
    re-configured pool's new buffers count from the next read)."""
    if not skus:
        return {}
    try:
        found = await store.pool_availability_many(pool.pool_id, list(skus))
    except NotFound as exc:
        raise UnknownPool(f"pool {pool.pool_id!r} no longer exists") from exc
    return {str(sku): int(n) for sku, n in found.items()}
