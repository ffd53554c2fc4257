"""Moving a location to another stock domain, and freezing a domain, on a real server."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from stocksync.config import Settings
from stocksync.domain.errors import DomainMoving
from stocksync.domain.model import Line, Location
from stocksync.store.domain_moves import (
    MoveRefused,
    _step,
    freeze,
    is_frozen,
    move_location,
    moving_key,
    parked_key,
    unfreeze,
)
from stocksync.store.keys import ON_HAND, SAFETY
from stocksync.store.redis_store import RedisStockStore

LOC = "store-a"
NORTH = "north"


async def events(store: RedisStockStore, domain: str) -> list[dict[str, str]]:
    keys = store.keys_of(domain)
    raw = cast("list[tuple[str, dict[str, str]]]", await store.client.xrange(keys.outbox))
    return [fields for _, fields in raw]


async def snapshot(client: Redis, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` with its value (a stream: its entries)."""
    out: dict[str, Any] = {}
    async for key in client.scan_iter(match=prefix + "*", count=1000):
        kind = await client.type(key)
        read = {
            "hash": client.hgetall,
            "set": client.smembers,
            "string": client.get,
            "stream": client.xrange,
            "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
        }[kind]
        out[key] = await read(key)
    return out


async def make_location(store: RedisStockStore, location_id: str = LOC) -> None:
    await store.upsert_location(Location(location_id, "Store A", "store", 52.52, 13.40, True, True))


async def test_move_is_refused_while_the_location_has_active_holds_and_changes_nothing(
    store: RedisStockStore, sku: str
) -> None:
    await make_location(store)
    await store.set_count(sku, LOC, 5)
    await store.reserve("r1", "web", [Line(sku, LOC, 2)], 600)
    await store.confirm("r1")
    before = await snapshot(store.client, "ss:{" + store.settings.namespace)

    with pytest.raises(MoveRefused, match="active holds"):
        await move_location(store, LOC, NORTH)

    assert await snapshot(store.client, "ss:{" + store.settings.namespace) == before
    assert await store.domain_of_location(LOC) == "default"
    await store.fulfill("r1")  # the hold ended: now the move goes through
    moved = await move_location(store, LOC, NORTH)
    assert (moved.source, moved.target, moved.positions) == ("default", NORTH, 1)


async def test_a_moved_location_keeps_its_positions_record_geo_and_route(
    store: RedisStockStore, sku: str
) -> None:
    other = sku + "-b"
    await make_location(store)
    await store.set_count(sku, LOC, 7, safety_stock=2)
    await store.adjust(sku, LOC, -1, reason="damage", source="wms", source_event_id="e1")
    await store.set_count(other, LOC, 3)
    await store.reserve("r1", "web", [Line(other, LOC, 1)], 600)
    await store.release("r1")
    counted_as_of = await store.client.hget(store.keys.position(sku, LOC), "c")
    deltas = await store.client.zrange(store.keys.deltas(sku, LOC), 0, -1, withscores=True)

    moved = await move_location(store, LOC, NORTH)

    assert moved.positions == 2
    north, default = store.keys_of(NORTH), store.keys
    assert await store.client.hgetall(north.position(sku, LOC)) == {
        ON_HAND: "6",
        SAFETY: "2",
        "c": counted_as_of,
    }
    # The as-of history came along (renamed members, same times and deltas).
    moved_deltas = await store.client.zrange(north.deltas(sku, LOC), 0, -1, withscores=True)
    assert [(m.rpartition(":")[2], at) for m, at in moved_deltas] == [
        (m.rpartition(":")[2], at) for m, at in deltas
    ]
    assert (await store.position(other, LOC)).on_hand == 3
    location = await store.get_location(LOC)
    assert location is not None
    assert location.domain == NORTH
    assert location.name == "Store A"
    assert await store.client.geopos(north.geo, LOC) != [None]
    assert await store.client.zscore(default.geo, LOC) is None
    assert not await store.client.exists(
        default.position(sku, LOC), default.position(other, LOC), default.location(LOC)
    )
    assert not await store.client.exists(moving_key(default, LOC), parked_key(default, LOC))
    assert await store.client.hget(store.directory.location_domains, LOC) == NORTH
    assert NORTH in await store.domains(fresh=True)

    # Each ledger sees the move: units out of default (its own seq goes on), into north (a
    # seq of north's own, from 1), so neither sees a seq go back.
    out = [e for e in await events(store, "default") if e["kind"] == "position_moved_out"]
    into = [e for e in await events(store, NORTH) if e["kind"] == "position_moved_in"]
    assert {(e["sku"], e["d_on_hand"], e["on_hand"]) for e in out} == {
        (sku, "-6", "0"),
        (other, "-3", "0"),
    }
    assert {(e["sku"], e["d_on_hand"], e["seq"], e["from"]) for e in into} == {
        (sku, "6", "1", "default"),
        (other, "3", "1", "default"),
    }
    default_seqs = await store.client.hgetall(default.seq)
    assert int(default_seqs[sku]) > 1
    assert int(default_seqs[other]) > 1

    # Work goes on in the new domain.
    await store.reserve("r2", "web", [Line(sku, LOC, 4)], 600)
    assert (await store.position(sku, LOC)).reserved == 4
    assert await store.domain_of_reservation("r2") == NORTH
    again = await move_location(store, LOC, NORTH)
    assert again.already_done


async def test_a_moved_location_takes_its_stock_beyond_the_shelf_and_its_supplies(
    store: RedisStockStore, sku: str
) -> None:
    await make_location(store)
    await store.set_count(sku, LOC, 9)
    await store.move_units(
        sku, LOC, 2, from_bucket="on_hand", to_bucket="damaged", reason="found",
        source="t", source_event_id="m1",
    )  # fmt: skip
    await store.move_units(
        sku, LOC, 3, from_bucket="on_hand", to_bucket="quality_control", reason="check",
        source="t", source_event_id="m2",
    )  # fmt: skip
    await store.set_incoming(sku, LOC, "po-1", 7, 1_900_000_000_000)
    before = await store.position(sku, LOC)
    assert (before.on_hand, before.damaged, before.quality_control, before.incoming) == (4, 2, 3, 7)

    await move_location(store, LOC, NORTH)

    after = await store.position(sku, LOC)
    assert (after.on_hand, after.damaged, after.quality_control) == (4, 2, 3)
    assert after.arrivals == before.arrivals
    source = store.keys_of("default")
    assert await store.client.exists(source.arrivals(sku, LOC)) == 0
    # Each domain's ledger balances: out of the source, into the target, bucket by bucket
    [out] = [e for e in await events(store, "default") if e["kind"] == "position_moved_out"]
    [into] = [e for e in await events(store, NORTH) if e["kind"] == "position_moved_in"]
    assert (out["d_damaged"], out["d_quality_control"]) == ("-2", "-3")
    assert (into["d_damaged"], into["d_quality_control"]) == ("2", "3")
    # the inspection queue follows the units to the target domain
    queue = await store.inspection_queue(LOC, limit=10)
    assert [(w.position.sku, w.position.quality_control) for w in queue.positions] == [(sku, 3)]
    assert await store.client.zcard(source.quality_control_positions(LOC)) == 0


async def test_move_is_refused_while_a_transfer_from_or_to_the_location_is_on_its_way(
    store: RedisStockStore, sku: str
) -> None:
    await make_location(store)
    await make_location(store, "store-b")
    await store.set_count(sku, LOC, 5)
    await store.ship_transfer("t-1", LOC, "store-b", [(sku, 2)])
    before = await snapshot(store.client, "ss:{" + store.settings.namespace)

    with pytest.raises(MoveRefused, match="transfer"):
        await move_location(store, "store-b", NORTH)

    assert await snapshot(store.client, "ss:{" + store.settings.namespace) == before
    await store.receive_transfer("t-1", [(sku, 2)])
    moved = await move_location(store, "store-b", NORTH)
    assert moved.target == NORTH
    assert (await store.position(sku, "store-b")).on_hand == 2


async def test_a_move_interrupted_after_any_step_finishes_when_run_again(
    store: RedisStockStore, sku: str
) -> None:
    skus = [f"{sku}-{i}" for i in range(5)]
    await make_location(store)
    for i, s in enumerate(skus):
        await store.set_count(s, LOC, 10 + i)
    # A crash after sealing and parking two SKUs, and importing one of them into north.
    await _step(store, "default", "seal", LOC, NORTH)
    await _step(store, "default", "park", LOC, NORTH, skus[0], skus[1])
    value = await store.client.hget(parked_key(store.keys, LOC), skus[0])
    await _step(store, NORTH, "import", LOC, "default", json.dumps([[skus[0], value]]))
    # Meanwhile the sealed location refuses stock changes and a re-creation.
    with pytest.raises(Exception, match="unknown location"):
        await store.set_count(skus[0], LOC, 99)
    with pytest.raises(DomainMoving):
        await make_location(store)

    moved = await move_location(store, LOC, NORTH)

    assert moved.positions == 4  # the fifth was imported before the crash
    for i, s in enumerate(skus):
        assert (await store.position(s, LOC)).on_hand == 10 + i
    into = [e["sku"] for e in await events(store, NORTH) if e["kind"] == "position_moved_in"]
    out = [e["sku"] for e in await events(store, "default") if e["kind"] == "position_moved_out"]
    assert sorted(into) == sorted(out) == sorted(skus)  # each once: nothing lost or doubled


async def test_a_process_with_a_stale_route_is_corrected_on_its_first_call(
    store: RedisStockStore, redis_client: Redis, sku: str
) -> None:
    await make_location(store)
    await store.set_count(sku, LOC, 5)
    other = RedisStockStore(redis_client, Settings(namespace=store.settings.namespace))
    assert await other.domain_of_location(LOC) == "default"  # cached before the move

    await move_location(store, LOC, NORTH)

    result = await other.set_count(sku, LOC, 8)
    assert result.applied
    assert result.position.on_hand == 8
    reserved = await other.reserve("r1", "web", [Line(sku, LOC, 3)], 600)
    assert reserved.created
    assert await store.domain_of_reservation("r1") == NORTH
    assert (await store.position(sku, LOC)).reserved == 3
    fresh = RedisStockStore(redis_client, Settings(namespace=store.settings.namespace))
    assert (await fresh.get_reservation("r1")).lines == [Line(sku, LOC, 3)]


async def test_a_frozen_domain_refuses_every_call_and_changes_nothing_until_unfrozen(
    store: RedisStockStore, sku: str
) -> None:
    await make_location(store)
    await store.set_count(sku, LOC, 5)
    await store.reserve("r1", "web", [Line(sku, LOC, 1)], 600)
    prefix = store.keys.prefix
    await freeze(store, "default")
    assert await is_frozen(store, "default")
    before = await snapshot(store.client, prefix)

    with pytest.raises(DomainMoving):
        await store.reserve("r2", "web", [Line(sku, LOC, 1)], 600)
    with pytest.raises(DomainMoving):
        await store.set_count(sku, LOC, 9)
    with pytest.raises(DomainMoving):
        await store.confirm("r1")
    with pytest.raises(DomainMoving):
        await store.positions(sku, [LOC])

    after = await snapshot(store.client, prefix)
    assert after == before
    await unfreeze(store, "default")
    assert not await is_frozen(store, "default")
    assert (await store.reserve("r2", "web", [Line(sku, LOC, 1)], 600)).created
    assert (await store.position(sku, LOC)).reserved == 2
