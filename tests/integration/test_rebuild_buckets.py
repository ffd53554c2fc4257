"""A rebuild restores the stock beyond the shelf from the ledger: each position's buckets,
its arrivals (supplies in their newest state, transfers shipped to it and not yet received or
cancelled), and the SKU's lines of transfer and return records; read back through the store,
and audited clean once the rebuild's own events are in the ledger."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine

from stocksync.domain.model import Arrival, ArrivalKind, Location
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.recovery.audit import audit
from stocksync.recovery.rebuild import rebuild
from stocksync.store.outbox import decode_event
from stocksync.store.recovery import RecoveryOps
from stocksync.store.redis_store import RedisStockStore
from tests.support.shelf_ledger import ShelfStory, put_position, record

SHIP_EXP, PO1_EXP, PO2_EXP = "1795000000000", "1795100000000", "1795200000000"


def ship(story: ShelfStory, xfer: str, qty: int, src: str, dst: str, exp: str = "") -> None:
    """transfer_shipped at the source and at the target, as the contract writes them."""
    details = {"xfer": xfer, "from": src, "to": dst, "exp": exp}
    story.bucket("transfer_shipped", src, qty, {"on_hand": -qty}, **details)
    story.bucket("transfer_shipped", dst, qty, {"in_transit": qty}, **details)


def shelf_story(sku: str) -> ShelfStory:
    story = ShelfStory(sku)
    story.count("wh-1", 20)
    story.count("store-a", 10)
    story.bucket("stock_moved", "store-a", 2, {"on_hand": -2, "damaged": 2}, to="damaged")
    story.bucket("returned", "store-a", 1, {"quality_control": 1}, ret="ret-1", disp="inspect")
    story.bucket("returned", "store-a", 2, {"on_hand": 2}, ret="ret-2", res="res-1", disp="restock")
    ship(story, "t-1", 3, "wh-1", "store-a", SHIP_EXP)
    ship(story, "t-0", 1, "wh-1", "store-a")
    story.bucket(
        "transfer_received", "store-a", 1, {"in_transit": -1, "on_hand": 1}, xfer="t-0", shipped="1"
    )
    story.supply("incoming_set", "store-a", 5, supply="po-1", exp=PO1_EXP, prev="0")
    story.supply("incoming_set", "store-a", 4, supply="po-2", exp=PO2_EXP, prev="0")
    story.supply("incoming_consumed", "store-a", 1, supply="po-2", left="3", by="adjust")
    story.supply("incoming_set", "store-a", 2, supply="po-3", exp=PO1_EXP, prev="0")
    story.supply("incoming_removed", "store-a", 2, supply="po-3")
    return story


async def stale_redis(store: RedisStockStore, sku: str) -> None:
    """What an older snapshot held: the first count only, an arrival since gone."""
    for loc in ("wh-1", "store-a"):
        await store.upsert_location(Location(loc, loc.title(), "store", 52.5, 13.4, True, True))
    await put_position(store, sku, "store-a", {"on_hand": 10}, 2)
    await store.client.hset(store.keys.arrivals(sku, "store-a"), "s:po-old", "9|")
    await store.client.sadd(store.keys.regressed, sku)


async def test_rebuild_restores_buckets_and_arrivals_read_through_the_store(
    engine: Engine, store: RedisStockStore, namespace: str, sku: str
) -> None:
    story = shelf_story(sku)
    record(SqlLedger(engine), namespace, story)
    await stale_redis(store, sku)

    await rebuild(RecoveryOps(store), engine, namespace, [sku])

    here = await store.position(sku, "store-a")
    assert (here.on_hand, here.reserved, here.damaged, here.quality_control, here.in_transit) == (
        11,
        0,
        2,
        1,
        3,
    )
    assert here.on_hand == story.position("store-a")["on_hand"]
    assert sorted(here.arrivals, key=lambda a: a.id) == [
        Arrival(ArrivalKind.SUPPLY, "po-1", 5, int(PO1_EXP)),
        Arrival(ArrivalKind.SUPPLY, "po-2", 3, int(PO2_EXP)),
        Arrival(ArrivalKind.TRANSFER, "t-1", 3, int(SHIP_EXP)),
    ]
    source = await store.position(sku, "wh-1")
    assert (source.on_hand, source.in_transit, source.arrivals) == (16, 0, ())
    assert await store.client.sismember(store.keys.regressed, sku) == 0
    # A unit moved in or out of on_hand after the count is in the as-of history.
    deltas = await store.client.zrange(store.keys.deltas(sku, "store-a"), 0, -1)
    assert sorted(int(m.split(":")[1]) for m in deltas) == [-2, 1, 2]


async def test_the_rebuilt_state_audits_clean_and_its_events_state_the_buckets(
    engine: Engine, store: RedisStockStore, namespace: str, sku: str
) -> None:
    ledger = SqlLedger(engine)
    record(ledger, namespace, shelf_story(sku))
    await stale_redis(store, sku)
    await rebuild(RecoveryOps(store), engine, namespace, [sku])

    raw = await store.client.xrange(store.keys.outbox)
    events = [decode_event(namespace, sid, f) for sid, f in raw]
    rebuilt = {e.location_id: e.fields for e in events if e.kind == "rebuilt"}
    buckets = ("on_hand", "damaged", "quality_control", "in_transit")
    assert {loc: [f[b] for b in buckets] for loc, f in rebuilt.items()} == {
        "store-a": ["11", "2", "1", "3"],
        "wh-1": ["16", "0", "0", "0"],
    }
    ledger.record(events)
    report = await audit(store, engine, namespace)
    assert (report.positions, report.in_flight, report.drifts) == (2, 0, [])


async def test_rebuild_restores_transfer_and_return_records_from_the_skus_lines(
    engine: Engine, store: RedisStockStore, namespace: str, sku: str
) -> None:
    record(SqlLedger(engine), namespace, shelf_story(sku))
    await stale_redis(store, sku)
    await rebuild(RecoveryOps(store), engine, namespace, [sku])

    open_one = await store.client.hgetall(store.keys.transfer("t-1"))
    assert json.loads(open_one.pop("lines")) == [[sku, 3, 0]]
    assert {k: v for k, v in open_one.items() if k not in ("created_at", "updated_at")} == {
        "from": "wh-1",
        "to": "store-a",
        "state": "shipped",
        "expected_at": SHIP_EXP,
        "fp": "",
        "supply": "",
    }
    assert await store.client.ttl(store.keys.transfer("t-1")) == -1  # open: kept
    received = await store.client.hgetall(store.keys.transfer("t-0"))
    assert (received["state"], json.loads(received["lines"])) == ("received", [[sku, 1, 1]])
    assert await store.client.ttl(store.keys.transfer("t-0")) > 0  # terminal: for the retention
    for loc in ("wh-1", "store-a"):
        listed = await store.client.zrange(store.keys.location_transfers(loc), 0, -1)
        assert sorted(listed) == ["t-0", "t-1"], loc

    unlinked = await store.client.hgetall(store.keys.stock_return("ret-1"))
    assert (unlinked["reservation_id"], json.loads(unlinked["lines"])) == (
        "",
        [[sku, "store-a", 1, "inspect"]],
    )
    linked = await store.client.hgetall(store.keys.stock_return("ret-2"))
    assert (linked["reservation_id"], json.loads(linked["lines"])) == (
        "res-1",
        [[sku, "store-a", 2, "restock"]],
    )
    assert await store.client.hgetall(store.keys.returned_units("res-1")) == {
        sku: "2",
        "ids": "ret-2",
    }


async def test_records_spanning_skus_are_merged_line_by_line_and_keep_redis_fingerprints(
    engine: Engine, store: RedisStockStore, namespace: str, sku: str
) -> None:
    """Each SKU's rebuild brings its own line; a record Redis still has keeps its fingerprint
    and the other SKUs' lines, and takes the ledger's state."""
    sku_b = sku + "-b"
    stories = [ShelfStory(sku), ShelfStory(sku_b)]
    for s, qty in zip(stories, (2, 5), strict=True):
        s.count("wh-1", 10)
        ship(s, "t-9", qty, "wh-1", "store-a")
        s.bucket(
            "transfer_received", "store-a", qty, {"in_transit": -qty, "on_hand": qty}, xfer="t-9"
        )
        s.bucket("returned", "store-a", 1, {"damaged": 1}, ret="ret-9", res="res-9", disp="damaged")
    record(SqlLedger(engine), namespace, *stories)
    await stale_redis(store, sku)
    # The snapshot's records: shipped (not yet received), one of the return's lines.
    await store.client.hset(
        store.keys.transfer("t-9"),
        mapping={"fp": "fp-t9", "from": "wh-1", "to": "store-a", "state": "shipped"}
        | {"lines": json.dumps([[sku, 2, 0], [sku_b, 5, 0]]), "supply": "po-x"},
    )
    await store.client.hset(
        store.keys.stock_return("ret-9"),
        mapping={"fp": "fp-r9", "lines": json.dumps([[sku_b, "store-a", 1, "damaged"]])},
    )
    await store.client.hset(store.keys.returned_units("res-9"), mapping={sku_b: 1, "ids": "ret-9"})

    ops = RecoveryOps(store)
    await rebuild(ops, engine, namespace, [sku])
    half = await store.client.hgetall(store.keys.transfer("t-9"))
    assert (half["state"], half["fp"], half["supply"]) == ("received", "fp-t9", "po-x")
    assert json.loads(half["lines"]) == [[sku, 2, 2], [sku_b, 5, 0]]
    await rebuild(ops, engine, namespace, [sku_b])

    whole = await store.client.hgetall(store.keys.transfer("t-9"))
    assert json.loads(whole["lines"]) == [[sku, 2, 2], [sku_b, 5, 5]]
    returned = await store.client.hgetall(store.keys.stock_return("ret-9"))
    assert returned["fp"] == "fp-r9"
    assert sorted(json.loads(returned["lines"])) == [
        [sku, "store-a", 1, "damaged"],
        [sku_b, "store-a", 1, "damaged"],
    ]
    assert await store.client.hgetall(store.keys.returned_units("res-9")) == {
        sku: "1",
        sku_b: "1",
        "ids": "ret-9",
    }
