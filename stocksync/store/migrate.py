"""Store layout migrations: bring keys written by an older release to this release's layout.

Layout 2 stores positions with one-letter fields, absent when 0
(:data:`stocksync.store.keys.POSITION_FIELDS`). Layout 3 (this release) keeps active
reservations in ordered indexes (per location and state, per key, per customer, at risk; see
``index_reservation`` in ``lua/_lib.lua``) instead of the sets and the per-location zset of
layout 2. Both run when a process opens the store (and as ``stocksync migrate-store``): a
namespace already marked at this layout costs one GET; otherwise position keys are found with
SCAN and rewritten by a script, and active reservations with ZSCAN of the active index and
indexed by the ``reindex`` operation, a bounded batch per call so Redis is never blocked for
long; the old index keys are then unlinked and the namespace marked. Both steps are
idempotent, so an interrupted or concurrent migration is simply run again.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from stocksync.store.keys import Keys

if TYPE_CHECKING:
    from stocksync.store.base import ScriptStore

POSITIONS_LAYOUT = 2  # one-letter position fields
LAYOUT_VERSION = 3  # ordered reservation indexes
MIGRATE_BATCH_KEYS = 500  # keys rewritten per script call (and asked of each SCAN step)
REINDEX_BATCH = 100  # reservations indexed per script call
# Layout 2's indexes of active reservations, no longer read by this release.
LEGACY_INDEXES = ("locres:*", "bykey:*", "bycust:*", "atrisk")


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
    if await layout_version(client, keys) >= POSITIONS_LAYOUT:
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
    await client.set(keys.layout, POSITIONS_LAYOUT)
    return rewritten


async def reindex_reservations(store: ScriptStore, batch: int = REINDEX_BATCH) -> int:
    """Index every active reservation of a layout-2 namespace in this release's ordered
    indexes, then unlink layout 2's; returns how many were indexed. Needs the library loaded
    (the ``reindex`` operation) and positions already migrated."""
    client, keys = store.client, store.keys
    if await layout_version(client, keys) >= LAYOUT_VERSION:
        return 0
    indexed = 0
    ids: list[str] = []
    async for member, _ in client.zscan_iter(keys.active, count=batch):
        ids.append(member)
        if len(ids) == batch:
            indexed += int(await store.run("reindex", *ids))
            ids = []
    if ids:
        indexed += int(await store.run("reindex", *ids))
    for pattern in LEGACY_INDEXES:
        stale = [key async for key in client.scan_iter(match=keys.prefix + pattern, count=500)]
        for start in range(0, len(stale), 500):
            await client.unlink(*stale[start : start + 500])
    await client.set(keys.layout, LAYOUT_VERSION)
    return indexed
