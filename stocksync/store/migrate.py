"""Store layout migrations: bring keys written by an older release to this release's layout.

Layout 2 (this release) stores positions with one-letter fields, absent when 0
(:data:`stocksync.store.keys.POSITION_FIELDS`). :func:`migrate_store` runs when a process opens
the store (and as ``stocksync migrate-store``): a namespace already marked at this layout costs
one GET; otherwise its position keys are found with SCAN and rewritten by a script, a bounded
batch per call so Redis is never blocked for long, then the namespace is marked. Rewriting is
idempotent, so an interrupted or concurrent migration is simply run again.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.asyncio import Redis

from stocksync.store.keys import Keys

LAYOUT_VERSION = 2
MIGRATE_BATCH_KEYS = 500  # keys rewritten per script call (and asked of each SCAN step)


@cache
def _positions_v2_source() -> str:
    path = resources.files("stocksync.store") / "lua" / "migrations" / "positions_v2.lua"
    return path.read_text()


async def layout_version(client: Redis, keys: Keys) -> int:
    """The namespace's marked layout; 1 (the spelled-out one) when unmarked."""
    marked = await client.get(keys.layout)
    return int(marked) if marked else 1


async def migrate_store(client: Redis, keys: Keys, batch: int = MIGRATE_BATCH_KEYS) -> int:
    """Rewrite every position key of the namespace still in the old layout; returns how many."""
    if await layout_version(client, keys) >= LAYOUT_VERSION:
        return 0
    if not await client.exists(keys.seq, keys.locations):  # a new namespace: nothing to rewrite
        await client.set(keys.layout, LAYOUT_VERSION)
        return 0
    script = client.register_script(_positions_v2_source())
    rewritten = 0
    found: list[str] = []
    async for key in client.scan_iter(match=keys.positions_pattern, count=batch):
        found.append(key)
        if len(found) == batch:
            rewritten += int(await script(keys=found))
            found = []
    if found:
        rewritten += int(await script(keys=found))
    await client.set(keys.layout, LAYOUT_VERSION)
    return rewritten
