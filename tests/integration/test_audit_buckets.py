"""The audit compares the buckets beyond the shelf (damaged, quality_control, in_transit)
like on_hand and reserved: the ledger's Σ of their deltas against the Redis position hash,
drift reported per bucket, in both passes (positions the ledger has and positions only Redis
has), and in `stocksync audit`'s table and CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import anyio.to_thread
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from stocksync.cli.main import app
from stocksync.config import Settings
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.recovery.audit import audit
from stocksync.store.keys import DAMAGED, IN_TRANSIT, QUALITY_CONTROL
from stocksync.store.redis_store import RedisStockStore
from tests.support.shelf_ledger import ShelfStory, put_position, record


def shelf_story(sku: str) -> ShelfStory:
    """store-a ends with on_hand 8, damaged 2, quality_control 1, in_transit 3."""
    story = ShelfStory(sku)
    story.count("store-a", 10)
    story.bucket("stock_moved", "store-a", 2, {"on_hand": -2, "damaged": 2}, to="damaged")
    story.bucket("returned", "store-a", 1, {"quality_control": 1}, ret="r-1", disp="inspect")
    story.bucket("transfer_shipped", "store-a", 3, {"in_transit": 3}, xfer="t-1", to="store-a")
    return story


async def settled(store: RedisStockStore, engine: Engine, namespace: str, sku: str) -> ShelfStory:
    """The story in the ledger and the same position in Redis."""
    story = shelf_story(sku)
    record(SqlLedger(engine), namespace, story)
    await put_position(store, sku, "store-a", story.position("store-a"), story.seq)
    return story


async def test_audit_finds_no_drift_when_every_bucket_matches(
    engine: Engine, store: RedisStockStore, namespace: str, sku: str
) -> None:
    story = await settled(store, engine, namespace, sku)
    assert story.position("store-a") == {
        "on_hand": 8,
        "reserved": 0,
        "damaged": 2,
        "quality_control": 1,
        "in_transit": 3,
    }
    report = await audit(store, engine, namespace)
    assert (report.positions, report.in_flight, report.drifts) == (1, 0, [])


async def test_audit_reports_a_drift_in_damaged_by_bucket(
    engine: Engine, store: RedisStockStore, namespace: str, sku: str
) -> None:
    await settled(store, engine, namespace, sku)
    await store.client.hset(store.keys.position(sku, "store-a"), DAMAGED, 3)
    (drift,) = (await audit(store, engine, namespace)).drifts
    assert (drift.sku, drift.location_id) == (sku, "store-a")
    assert (drift.redis_damaged, drift.ledger_damaged) == (3, 2)
    assert drift.buckets == {"damaged": (3, 2)}
    assert drift.units == 1


async def test_audit_reports_each_drifting_bucket_and_sums_their_units(
    engine: Engine, store: RedisStockStore, namespace: str, sku: str
) -> None:
    await settled(store, engine, namespace, sku)
    key = store.keys.position(sku, "store-a")
    await store.client.hdel(key, QUALITY_CONTROL)  # as a lost write leaves it: absent = 0
    await store.client.hset(key, IN_TRANSIT, 5)
    report = await audit(store, engine, namespace, page=1)
    (drift,) = report.drifts
    assert drift.buckets == {"quality_control": (0, 1), "in_transit": (5, 3)}
    assert report.drift_units == 3


async def test_audit_splits_a_skus_buckets_over_pages_as_one_large_page_reads_them(
    engine: Engine, store: RedisStockStore, namespace: str, sku: str
) -> None:
    story = shelf_story(sku)
    for loc in ("store-b", "store-c"):
        story.count(loc, 4)
    story.bucket("stock_moved", "store-c", 1, {"on_hand": -1, "quality_control": 1})
    record(SqlLedger(engine), namespace, story)
    for loc in ("store-a", "store-b", "store-c"):
        await put_position(store, sku, loc, story.position(loc), story.seq)
    await store.client.hset(store.keys.position(sku, "store-c"), IN_TRANSIT, 2)
    split = await audit(store, engine, namespace, page=1)
    whole = await audit(store, engine, namespace, page=1000)
    assert split == whole
    assert [(d.location_id, d.buckets) for d in split.drifts] == [
        ("store-c", {"in_transit": (2, 0)})
    ]
    assert split.positions == 3


async def test_audit_judges_a_position_only_redis_has_by_its_buckets_too(
    engine: Engine, store: RedisStockStore, namespace: str, sku: str
) -> None:
    """A settled SKU's position the ledger has no row for: damaged units there are drift."""
    story = await settled(store, engine, namespace, sku)
    await put_position(store, sku, "store-z", {"damaged": 2}, story.seq)
    report = await audit(store, engine, namespace, page=3, scan_count=5)
    assert [(d.location_id, d.buckets) for d in report.drifts] == [("store-z", {"damaged": (2, 0)})]
    assert report.positions == 2


async def test_cli_audit_lists_drifting_buckets_and_exports_every_bucket(
    store: RedisStockStore, redis_url: str, namespace: str, sku: str, tmp_path: Path
) -> None:
    engine = make_engine(Settings(data_dir=tmp_path).sqlalchemy_url)
    create_tables(engine)
    try:
        await settled(store, engine, namespace, sku)
    finally:
        engine.dispose()
    await store.client.hset(store.keys.position(sku, "store-a"), DAMAGED, 5)
    env = {
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_DATA_DIR": str(tmp_path),
    }
    export = tmp_path / "drift.csv"
    result = await anyio.to_thread.run_sync(
        lambda: CliRunner().invoke(app, ["audit", "--export", str(export)], env=env)
    )
    assert result.exit_code == 1, result.output
    assert "1 drifting, 3 unit(s) of drift" in result.stdout
    (row,) = [line.split() for line in result.stdout.splitlines() if sku in line]
    assert row == [sku, "store-a", "damaged", "5", "2"]
    with export.open() as f:
        (exported,) = list(csv.DictReader(f))
    assert exported == {
        "sku": sku,
        "location_id": "store-a",
        "redis_on_hand": "8",
        "ledger_on_hand": "8",
        "redis_reserved": "0",
        "ledger_reserved": "0",
        "redis_damaged": "5",
        "ledger_damaged": "2",
        "redis_quality_control": "1",
        "ledger_quality_control": "1",
        "redis_in_transit": "3",
        "ledger_in_transit": "3",
    }
