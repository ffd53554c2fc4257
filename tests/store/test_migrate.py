"""The position layout (one-letter fields, absent when 0) and the migration from the old one."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from redis.asyncio import Redis
from typer.testing import CliRunner

from stocksync.cli.main import app
from stocksync.domain.model import Line, Location, Position, State
from stocksync.store.keys import (
    COUNT_AS_OF,
    LEGACY_POSITION_FIELDS,
    ON_HAND,
    POSITION_FIELDS,
    RESERVED,
    SAFETY,
    Keys,
    directory_prefix,
)
from stocksync.store.migrate import (
    LAYOUT_VERSION,
    POSITIONS_LAYOUT,
    layout_version,
    migrate_store,
    migrate_to_domains,
    reindex_reservations,
)
from stocksync.store.pickups import PickupOps
from stocksync.store.redis_store import RedisStockStore

AS_OF = 1_700_000_000_000


async def write_legacy(store: RedisStockStore, sku: str, loc: str, **fields: int) -> None:
    """A position as the previous release wrote it: spelled-out fields, zeros included."""
    values = {"on_hand": 0, "reserved": 0, "safety": 0, "count_as_of": AS_OF} | fields
    await store.client.hset(store.keys.position(sku, loc), mapping=values)  # type: ignore[arg-type]
    await store.client.sadd(store.keys.sku_locations(sku), loc)  # type: ignore[misc]
    await store.client.hset(store.keys.seq, sku, 1)  # type: ignore[misc]


async def test_position_stores_only_fields_that_are_not_zero(
    store: RedisStockStore, stocked: object, sku: str
) -> None:
    await stocked(sku, 5)  # type: ignore[operator]
    key = store.keys.position(sku, "store-a")
    assert set(await store.client.hgetall(key)) == {ON_HAND, COUNT_AS_OF}
    await store.reserve("r1", "web", [Line(sku, "store-a", 2)], 60)
    await store.set_count(sku, "store-a", 5, safety_stock=1)
    raw = await store.client.hgetall(key)
    assert (raw[ON_HAND], raw[RESERVED], raw[SAFETY]) == ("5", "2", "1")
    await store.set_count(sku, "store-a", 5, safety_stock=0)
    assert SAFETY not in await store.client.hgetall(key)
    assert await store.position(sku, "store-a") == Position(sku, "store-a", 5, 2, 0)


async def test_migrate_store_rewrites_old_positions_in_bounded_batches(
    store: RedisStockStore, sku: str
) -> None:
    await store.upsert_location(Location("store-a", "A", "store"))
    locations = [f"loc-{i}" for i in range(5)]
    for i, loc in enumerate(locations):
        await store.upsert_location(Location(loc, loc, "store"))
        await write_legacy(store, sku, loc, on_hand=10 + i, reserved=i, safety=1 if i else 0)
    await write_legacy(store, sku, "store-a")  # all zero but the count: the key stays

    assert await layout_version(store.client, store.keys) == 1
    assert await migrate_store(store.client, store.keys, batch=2) == 6
    assert await layout_version(store.client, store.keys) == POSITIONS_LAYOUT

    first = await store.client.hgetall(store.keys.position(sku, "loc-0"))
    assert first == {ON_HAND: "10", COUNT_AS_OF: str(AS_OF)}  # zeros are absent
    last = await store.client.hgetall(store.keys.position(sku, "loc-4"))
    assert last == {ON_HAND: "14", RESERVED: "4", SAFETY: "1", COUNT_AS_OF: str(AS_OF)}
    for loc in locations:
        raw = await store.client.hgetall(store.keys.position(sku, loc))
        assert set(raw) <= set(POSITION_FIELDS)
        assert not set(raw) & set(LEGACY_POSITION_FIELDS)
    assert await store.position(sku, "loc-3") == Position(sku, "loc-3", 13, 3, 1)
    # The scripts work on the migrated keys: 14 - 4 - 1 = 9 available at loc-4.
    held = await store.reserve("r1", "web", [Line(sku, "loc-4", 9)], 60)
    assert held.created
    assert (await store.position(sku, "loc-4")).reserved == 13


async def test_migrate_store_is_idempotent(store: RedisStockStore, sku: str) -> None:
    await store.upsert_location(Location("store-a", "A", "store"))
    await write_legacy(store, sku, "store-a", on_hand=7, reserved=2)
    assert await migrate_store(store.client, store.keys) == 1
    migrated = await store.client.hgetall(store.keys.position(sku, "store-a"))
    assert await migrate_store(store.client, store.keys) == 0  # marked: one GET
    await store.client.delete(store.keys.layout)
    assert await migrate_store(store.client, store.keys) == 0  # unmarked, yet nothing old left
    assert await store.client.hgetall(store.keys.position(sku, "store-a")) == migrated


async def test_migrate_store_sums_a_key_holding_both_spellings(
    store: RedisStockStore, sku: str
) -> None:
    await store.upsert_location(Location("store-a", "A", "store"))
    await write_legacy(store, sku, "store-a", on_hand=7, reserved=2, safety=3)
    key = store.keys.position(sku, "store-a")
    await store.client.hset(key, mapping={RESERVED: 1, SAFETY: 0})  # type: ignore[arg-type]
    assert await migrate_store(store.client, store.keys) == 1
    assert await store.client.hgetall(key) == {ON_HAND: "7", RESERVED: "3", COUNT_AS_OF: str(AS_OF)}


async def test_migrate_store_marks_a_new_namespace_without_scanning(
    redis_client: Redis, namespace: str
) -> None:
    keys = Keys(namespace)
    assert await migrate_store(redis_client, keys) == 0
    assert await layout_version(redis_client, keys) == LAYOUT_VERSION


async def test_cli_migrate_store_reports_rewritten_keys(
    store: RedisStockStore, redis_url: str, namespace: str, sku: str, tmp_path: Path
) -> None:
    await store.upsert_location(Location("store-a", "A", "store"))
    await write_legacy(store, sku, "store-a", on_hand=4)
    env = {
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_DATA_DIR": str(tmp_path),
    }
    result = await anyio.to_thread.run_sync(
        lambda: CliRunner().invoke(app, ["migrate-store"], env=env)
    )
    assert result.exit_code == 0, result.output
    assert (
        f"store layout {LAYOUT_VERSION}: 1 position key(s) rewritten, "
        "0 active reservation(s) indexed" in result.output
    )
    assert (await store.position(sku, "store-a")).on_hand == 4


# Layout 3's ordered indexes of active reservations; layout 2 had sets and a zset by location.
NEW_INDEXES = ("locstate:*", "keyres:*", "custres:*", "ages:*", "locrisk:*", "risk")


async def as_layout_2(store: RedisStockStore) -> None:
    """Turn the namespace's reservation indexes into what the previous release left."""
    client, prefix = store.client, store.keys.prefix
    for pattern in NEW_INDEXES:
        async for key in client.scan_iter(match=prefix + pattern):
            await client.unlink(key)
    await client.zadd(prefix + "locres:store-a", {"r-web": 1, "r-key": 2})
    await client.sadd(prefix + "bykey:k1", "r-key")  # type: ignore[misc]
    await client.sadd(prefix + "bycust:crm-1", "r-web")  # type: ignore[misc]
    await client.sadd(prefix + "atrisk", "r-web")  # type: ignore[misc]
    await client.set(store.keys.layout, POSITIONS_LAYOUT)


async def test_reindex_puts_an_older_release_s_active_reservations_in_the_new_indexes(
    store: RedisStockStore, stocked: object, sku: str
) -> None:
    await stocked(sku, 10)  # type: ignore[operator]
    await store.reserve("r-web", "web", [Line(sku, "store-a", 1)], 600, "crm-1")
    await store.reserve("r-key", "web", [Line(sku, "store-a", 2)], 600, key_id="k1")
    await store.reserve("r-done", "web", [Line(sku, "store-a", 1)], 600)
    await store.release("r-done")
    await store.confirm("r-key")
    ops = PickupOps(store)
    before = {r.reservation_id for r in await ops.find("loc", "store-a")}
    assert before == {"r-web", "r-key"}
    await as_layout_2(store)
    assert await ops.find("loc", "store-a") == []  # what a layout-2 namespace looks like now

    assert await reindex_reservations(store, batch=1) == 2
    assert {r.reservation_id for r in await ops.find("loc", "store-a")} == before
    confirmed = await ops.find("loc", "store-a", states=[State.CONFIRMED])
    assert [r.reservation_id for r in confirmed] == ["r-key"]
    assert [r.reservation_id for r in await ops.find("cust", "crm-1")] == ["r-web"]
    assert await store.client.zcard(store.keys.key_reservations("k1")) == 1
    legacy = [k async for k in store.client.scan_iter(match=store.keys.prefix + "*")]
    assert not [k for k in legacy if ":locres:" in k or ":bykey:" in k or ":bycust:" in k]
    assert store.keys.prefix + "atrisk" not in legacy
    assert await layout_version(store.client, store.keys) == LAYOUT_VERSION
    assert await reindex_reservations(store) == 0  # marked: one GET


async def test_keys_written_before_domains_move_into_the_default_domain(
    store: RedisStockStore, stocked: object, sku: str
) -> None:
    """A namespace as the release before stock domains left it (every key under the
    namespace's own hash tag, no directory) becomes the `default` domain, its locations and
    reservations routed by the directory."""
    await stocked(sku, 5)  # type: ignore[operator]
    await store.reserve("before-domains", "web", [Line(sku, "store-a", 2)], 600)
    client, namespace = store.client, store.keys.namespace
    old, new = directory_prefix(namespace), store.keys.prefix
    written = [key async for key in client.scan_iter(match=new + "*")]
    for key in written:  # the previous release's names: the same keys, the namespace's tag
        await client.rename(key, old + key.removeprefix(new))
    directory = store.directory  # its keys share the old tag: not there before domains
    await client.delete(
        directory.domains, directory.location_domains, directory.reservation_domains
    )

    moved = await migrate_to_domains(client, namespace, batch=3)
    assert moved == len(written)
    assert sorted([key async for key in client.scan_iter(match=new + "*")]) == sorted(written)
    fresh = RedisStockStore(client, store.settings)  # a process that routes from the directory
    assert await fresh.domain_of_location("store-a") == "default"
    assert await fresh.domain_of_reservation("before-domains") == "default"
    assert (await fresh.fulfill("before-domains")).reservation.state == State.FULFILLED
    assert await fresh.position(sku, "store-a") == Position(sku, "store-a", 3, 0, 0)
    assert await migrate_to_domains(client, namespace) == 0  # marked: nothing to do again
