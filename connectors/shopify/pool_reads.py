"""A channel pool as the Shopify push sees it: its domain, its locations, its offered units.

The push needs three things of a pool: the stock domain its events are in, the locations
whose changes alter its number, and Σ offered per SKU (offered = max(0, available - buffer)
per location). The store answers these with ``get_pool`` and ``pool_availability_many`` (one
script call per page of SKUs, buffers read inside it); those are used whenever the store has
them. A store without them (pools arriving in the same release) is read here from the pool's
documented hash (``Keys.pool``) and the positions of its locations, computed the same way, so
both paths push the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connectors.shopify.mapping import offered
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.replies import POSITION_ROW, parse_position_row

# SKUs read together: their reads share a batched call, well under the store's queue bound.
SKUS_PER_ROUND_TRIP = 500


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
    reader: Any = getattr(store, "get_pool", None)
    if reader is not None:
        pool = await reader(pool_id)
        if pool is None:
            return None
        return PoolView(
            pool.pool_id,
            pool.domain,
            tuple((p.location_id, p.priority, p.buffer) for p in pool.locations),
        )
    domain = await store.domain_of_pool(pool_id)
    if domain is None:
        return None
    locations = await _stored_locations(store, pool_id, domain)
    return None if locations is None else PoolView(pool_id, domain, locations)


async def _stored_locations(
    store: RedisStockStore, pool_id: str, domain: str
) -> tuple[tuple[str, int, int], ...] | None:
    raw = await store.client.hget(store.keys_of(domain).pool(pool_id), "locs")
    if raw is None:
        return None
    return tuple(
        (str(loc), int(priority), int(buffer)) for loc, priority, buffer in json.loads(raw)
    )


async def pool_available_many(
    store: RedisStockStore, pool: PoolView, skus: Sequence[str]
) -> dict[str, int]:
    """Σ offered per SKU over the pool's locations, with the buffers as configured now (a
    re-configured pool's new buffers count from the next read)."""
    if not skus:
        return {}
    reader: Any = getattr(store, "pool_availability_many", None)
    if reader is not None:
        return {str(sku): int(n) for sku, n in (await reader(pool.pool_id, list(skus))).items()}
    locations = await _stored_locations(store, pool.pool_id, pool.domain)
    if locations is None:
        raise UnknownPool(f"pool {pool.pool_id!r} no longer exists")
    buffers = {location_id: buffer for location_id, _, buffer in locations}
    ids = sorted(buffers)
    found: dict[str, int] = {}
    for start in range(0, len(skus), SKUS_PER_ROUND_TRIP):
        page = list(skus[start : start + SKUS_PER_ROUND_TRIP])
        replies = await store.run_pipelined(
            [("read_positions", (sku, *ids)) for sku in page], domain=pool.domain
        )
        for sku, flat in zip(page, replies, strict=True):
            positions = [
                parse_position_row(sku, flat[i : i + POSITION_ROW])[0]
                for i in range(0, len(flat), POSITION_ROW)
            ]
            found[sku] = sum(offered(p, buffers[p.location_id]) for p in positions)
    return found
