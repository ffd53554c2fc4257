"""Channel pools written straight into Redis in the documented format (keys.py ``Keys.pool``),
so the reserve side is tested without the pool configuration API; and the directory route."""

from __future__ import annotations

import json
from collections.abc import Sequence

from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.store.redis_store import RedisStockStore

# (location_id, priority, buffer)
PoolLocation = tuple[str, int, int]


async def put_pool(
    store: RedisStockStore,
    pool_id: str,
    locations: Sequence[PoolLocation],
    strategy: str = "priority",
    channels: Sequence[str] = ("web",),
    domain: str = DEFAULT_DOMAIN,
) -> None:
    """Create or replace a pool of ``domain``: its hash, the domain's set, the directory."""
    keys = store.keys_of(domain)
    locs = sorted(([loc, prio, buf] for loc, prio, buf in locations), key=lambda x: (x[1], x[0]))
    await store.client.hset(
        keys.pool(pool_id),
        mapping={
            "name": pool_id,
            "channels": json.dumps(list(channels)),
            "strategy": strategy,
            "locs": json.dumps(locs),
            "updated_at": 0,
        },
    )
    await store.client.sadd(keys.pools, pool_id)
    await store.register_pool(pool_id, domain)
