"""The inspection queue: emit() keeps a location's quality_control index, inspection_queue.lua
reads it, against a real Redis.

The scripts that put units into quality_control (returns, moves) emit bucket events carrying
the position's ``quality_control`` after the change (the shelf contract); ``bucket_event``
(tests/support/inspection.py) is such a script in miniature, so the index is tested apart
from any one of them.
"""

from __future__ import annotations

import json

import pytest

from stocksync.domain.errors import NotFound
from stocksync.store.keys import Keys
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.scripts import library_source
from tests.support.inspection import bucket_event
from tests.support.store import Stocked, add_location, server_ms, wait_for_server_ms_after


async def indexed(store: RedisStockStore, location_id: str) -> list[str]:
    return list(await store.client.zrange(store.keys.quality_control_positions(location_id), 0, -1))


async def test_lua_index_helper_builds_the_name_python_builds(store: RedisStockStore) -> None:
    keys = Keys("vocab", "north")
    probe = library_source() + "\nreturn qc_index_key('L')"
    reply = await store.client.eval(probe, 1, keys.anchor, 60, 0, "")  # type: ignore[no-untyped-call]
    assert reply == keys.quality_control_positions("L")


async def test_inspection_queue_of_unknown_location_is_not_found(store: RedisStockStore) -> None:
    with pytest.raises(NotFound):
        await store.inspection_queue("nowhere", limit=10)


async def test_inspection_queue_is_empty_without_units_in_quality_control(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    queue = await store.inspection_queue("store-a", limit=10)
    assert (queue.waiting, queue.positions) == (0, [])


async def test_inspection_queue_lists_positions_longest_waiting_first(
    store: RedisStockStore, stocked: Stocked
) -> None:
    await stocked("LAMP-1", 4)
    await stocked("CHAIR-1", 2)
    before = await server_ms(store)
    await bucket_event(store, "LAMP-1", "store-a", 1)
    await wait_for_server_ms_after(store, await server_ms(store))
    await bucket_event(store, "CHAIR-1", "store-a", 2)
    await bucket_event(store, "LAMP-1", "store-a", 3)  # more units: it keeps its place
    queue = await store.inspection_queue("store-a", limit=10)
    assert queue.waiting == 2
    rows = [
        (w.position.sku, w.position.quality_control, w.position.on_hand) for w in queue.positions
    ]
    assert rows == [("LAMP-1", 3, 4), ("CHAIR-1", 2, 2)]
    lamp, chair = queue.positions
    assert before <= lamp.since_ms < chair.since_ms <= await server_ms(store)
    assert lamp.position.location_id == "store-a"
    assert lamp.position.available == 4  # units in inspection do not sell


async def test_a_position_leaves_the_queue_when_its_last_unit_leaves_quality_control(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    await bucket_event(store, sku, "store-a", 2)
    await bucket_event(store, sku, "store-a", 1)
    assert await indexed(store, "store-a") == [sku]
    await bucket_event(store, sku, "store-a", 0)
    assert await indexed(store, "store-a") == []
    assert (await store.inspection_queue("store-a", limit=10)).positions == []


async def test_the_queue_is_per_location(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1, "store-a")
    await stocked(sku, 1, "store-b")
    await bucket_event(store, sku, "store-b", 1)
    assert (await store.inspection_queue("store-a", limit=10)).positions == []
    (only,) = (await store.inspection_queue("store-b", limit=10)).positions
    assert (only.position.sku, only.position.location_id) == (sku, "store-b")


async def test_events_without_a_quality_control_value_leave_the_index_alone(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    await bucket_event(store, sku, "store-a", 1)
    await store.adjust(sku, "store-a", -1, reason="sale", source="pos", source_event_id="t-1")
    await store.set_count(sku, "store-a", 7)
    assert await indexed(store, "store-a") == [sku]


async def test_inspection_queue_drops_an_entry_whose_position_has_no_such_units(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    await bucket_event(store, sku, "store-a", 1)
    # Changed without an event (a rebuild from an older ledger, a hand repair): the read heals.
    await store.client.hdel(store.keys.position(sku, "store-a"), "q")
    queue = await store.inspection_queue("store-a", limit=10)
    assert (queue.waiting, queue.positions) == (0, [])
    assert await indexed(store, "store-a") == []


async def test_inspection_queue_reads_at_most_limit_positions(store: RedisStockStore) -> None:
    await add_location(store, "store-a")
    skus = [f"SKU-{i}" for i in range(5)]
    for sku in skus:
        await bucket_event(store, sku, "store-a", 1)
    queue = await store.inspection_queue("store-a", limit=2)
    assert queue.waiting == 5
    assert len(queue.positions) == 2
    assert {w.position.sku for w in queue.positions} <= set(skus)


async def test_a_rebuild_puts_positions_in_and_out_of_the_queue(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)

    async def rebuild(quality_control: int) -> None:
        positions = [["store-a", 1, 0, 0, 0, [], 0, quality_control, 0]]
        args = [sku, 99, json.dumps(positions), "[]", "[]", "[]", "[]", "[]", "[]", "[]"]
        assert (await store.run("rebuild", *args))[0] == "ok"

    await rebuild(2)  # the ledger had units in inspection that this Redis lost
    (waiting,) = (await store.inspection_queue("store-a", limit=10)).positions
    assert (waiting.position.sku, waiting.position.quality_control) == (sku, 2)
    await rebuild(0)
    assert await indexed(store, "store-a") == []
