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
from redis.exceptions import ResponseError

from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.store.keys import Directory, Keys

if TYPE_CHECKING:
    from stocksync.store.base import ScriptStore

DOMAINS_LAYOUT = 1  # the directory's mark: every key is in a stock domain
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


async def migrate_to_domains(client: Redis, namespace: str, batch: int = MIGRATE_BATCH_KEYS) -> int:
    """Move the keys of a namespace written before stock domains (prefix ``ss:{<ns>}:``) into
    the ``default`` domain (``ss:{<ns>:default}:``) and record its locations and reservations
    in the directory; returns how many keys moved. Runs before the other migrations (they then
    work on the default domain) and is idempotent: a key already moved is skipped, and the
    directory's mark makes a migrated namespace cost one GET."""
    directory, target = Directory(namespace), Keys(namespace, DEFAULT_DOMAIN)
    if await client.get(directory.layout):
        return 0
    moved = 0
    async for key in client.scan_iter(match=directory.prefix + "*", count=batch):
        if directory.is_directory_key(key):
            continue
        moved += await _move_key(client, key, target.prefix + key.removeprefix(directory.prefix))
    locations = await client.smembers(target.locations)
    for location_id in locations:
        await client.hsetnx(directory.location_domains, str(location_id), DEFAULT_DOMAIN)
    async for key in client.scan_iter(match=target.prefix + "res:*", count=batch):
        reservation_id = key.removeprefix(target.prefix + "res:")
        await client.hsetnx(directory.reservation_domains, reservation_id, DEFAULT_DOMAIN + "|0")
    await client.sadd(directory.domains, DEFAULT_DOMAIN)
    await client.set(directory.layout, DOMAINS_LAYOUT)
    return moved


async def _move_key(client: Redis, source: str, target: str) -> int:
    """RENAME, or (on a cluster, where the two names are in different slots) DUMP, RESTORE
    with the same TTL, and DEL; 0 when another process moved it first."""
    try:
        await client.rename(source, target)
        return 1
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return 0
        if "crossslot" not in str(exc).lower():
            raise
    dumped = await client.dump(source)
    if dumped is None:
        return 0
    ttl = max(int(await client.pttl(source)), 0)
    await client.restore(target, ttl, dumped, replace=True)
    await client.delete(source)
    return 1
