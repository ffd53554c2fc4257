"""The ledger writer worker against the real outbox stream and real databases."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, ProgrammingError

from stocksync.ledger.db import make_engine
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.ledger.tables import Movement
from stocksync.metrics import Metrics
from stocksync.store.outbox import Entry
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import GROUP, LedgerCopy
from tests.support.ledger import drive, dump, outbox_events, renamed
from tests.support.store import Stocked, server_ms

WAIT_LIMIT_SECONDS = 10.0


@pytest.fixture
def ledger(engine: Engine) -> SqlLedger:
    return SqlLedger(engine)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    return 0.0 if value is None else value


def movement_count(engine: Engine, namespace: str) -> int:
    with engine.connect() as conn:
        stmt = select(func.count()).select_from(Movement).where(Movement.namespace == namespace)
        return int(conn.execute(stmt).scalar_one())


async def make_events(store: RedisStockStore, stocked: Stocked, sku: str, sales: int) -> int:
    """A location, a count and ``sales`` adjustments; returns how many SKU events that is."""
    await stocked(sku, 100)
    for i in range(sales):
        await store.adjust(sku, "store-a", -1, reason="sale", source="pos", source_event_id=f"s{i}")
    return 1 + sales


async def stream_ids(store: RedisStockStore) -> list[str]:
    entries = cast("list[tuple[str, Any]]", await store.client.xrange(store.keys.outbox))
    return [entry_id for entry_id, _ in entries]


async def pending(store: RedisStockStore) -> dict[str, Any]:
    return cast("dict[str, Any]", await store.client.xpending(store.keys.outbox, GROUP))


async def test_drain_records_acks_and_trims(
    store: RedisStockStore,
    stocked: Stocked,
    sku: str,
    namespace: str,
    engine: Engine,
    ledger: SqlLedger,
    metrics: Metrics,
) -> None:
    sku_events = await make_events(store, stocked, sku, 5)
    total = len(await stream_ids(store))  # plus the location event
    done = await LedgerCopy(store.outbox, ledger, metrics, consumer="w1").drain_once()
    assert done == total
    assert movement_count(engine, namespace) == sku_events
    assert (await pending(store))["pending"] == 0
    assert await store.client.xlen(store.keys.outbox) == 0  # acknowledged, so trimmed
    assert sample(metrics, "stocksync_ledger_events_written_total") == total
    assert sample(metrics, "stocksync_ledger_batch_size_count") >= 1
    assert sample(metrics, "stocksync_ledger_lag_events") == 0
    assert sample(metrics, "stocksync_ledger_lag_seconds") == 0
    # Nothing new: a second pass does nothing; new events are picked up by the next one.
    assert await LedgerCopy(store.outbox, ledger, metrics, consumer="w1").drain_once() == 0
    await store.adjust(sku, "store-a", 3, reason="receipt", source="wms", source_event_id="r1")
    assert await LedgerCopy(store.outbox, ledger, metrics, consumer="w1").drain_once() == 1
    assert movement_count(engine, namespace) == sku_events + 1


async def test_entries_are_acknowledged_only_after_commit(
    store: RedisStockStore,
    stocked: Stocked,
    sku: str,
    namespace: str,
    engine: Engine,
    ledger: SqlLedger,
    metrics: Metrics,
    tmp_path: Path,
) -> None:
    sku_events = await make_events(store, stocked, sku, 3)
    total = len(await stream_ids(store))
    # A database without the ledger tables: the write fails, nothing is acknowledged or trimmed.
    broken = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises((OperationalError, ProgrammingError)):
        await LedgerCopy(store.outbox, SqlLedger(broken), metrics, consumer="w1").drain_once()
    broken.dispose()
    assert (await pending(store))["pending"] == total
    assert len(await stream_ids(store)) == total
    # The retry re-reads this consumer's pending entries first and records them.
    assert await LedgerCopy(store.outbox, ledger, metrics, consumer="w1").drain_once() == total
    assert movement_count(engine, namespace) == sku_events
    assert (await pending(store))["pending"] == 0

    # The same with one failing write inside process_batch.
    await store.adjust(sku, "store-a", -1, reason="sale", source="pos", source_event_id="late")
    entries = await store.outbox.read_group(GROUP, "w1", start=">", count=100)
    assert len(entries) == 1

    def fail(entries: Mapping[str, Sequence[Entry]]) -> int:
        raise OperationalError("INSERT", {}, Exception("database is gone"))

    failing = SqlLedger(engine)
    failing.record_entries = fail  # type: ignore[method-assign]
    with pytest.raises(OperationalError):
        await LedgerCopy(store.outbox, failing, metrics, consumer="w1").process(entries)
    assert (await pending(store))["pending"] == 1
    assert await LedgerCopy(store.outbox, ledger, metrics, consumer="w1").process(entries) == 1
    assert (await pending(store))["pending"] == 0
    assert movement_count(engine, namespace) == sku_events + 1


async def test_a_dead_consumers_entries_are_claimed(
    store: RedisStockStore,
    stocked: Stocked,
    sku: str,
    namespace: str,
    engine: Engine,
    ledger: SqlLedger,
    metrics: Metrics,
) -> None:
    sku_events = await make_events(store, stocked, sku, 4)
    ids = await stream_ids(store)
    await store.outbox.create_group(GROUP)
    taken = await store.outbox.read_group(GROUP, "dead", start=">", count=100)
    assert [i for i, _ in taken] == ids  # consumer "dead" never acknowledges them
    # Not idle long enough: B leaves them alone, and the trim keeps them.
    kw: dict[str, Any] = {"consumer": "b"}
    assert (
        await LedgerCopy(store.outbox, ledger, metrics, claim_idle_ms=60_000, **kw).drain_once()
        == 0
    )
    assert await stream_ids(store) == ids
    assert movement_count(engine, namespace) == 0
    assert sample(metrics, "stocksync_ledger_lag_events") == len(ids)
    # Idle past the threshold: B claims, records and acknowledges them.
    assert await LedgerCopy(
        store.outbox, ledger, metrics, claim_idle_ms=0, **kw
    ).drain_once() == len(ids)
    assert movement_count(engine, namespace) == sku_events
    assert (await pending(store))["pending"] == 0
    assert await stream_ids(store) == []
    assert sample(metrics, "stocksync_ledger_lag_events") == 0


async def test_trim_never_removes_unacknowledged_entries(
    store: RedisStockStore,
    stocked: Stocked,
    sku: str,
    namespace: str,
    engine: Engine,
    ledger: SqlLedger,
    metrics: Metrics,
) -> None:
    await make_events(store, stocked, sku, 9)
    ids = await stream_ids(store)
    assert len(ids) == 11
    stream = store.keys.outbox
    await store.outbox.create_group(GROUP)
    head = await store.outbox.read_group(GROUP, "b", start=">", count=4)
    await LedgerCopy(store.outbox, ledger, metrics, consumer="w1").process(head)
    held = await store.outbox.read_group(GROUP, "a", start=">", count=3)  # never acknowledged
    tail = await store.outbox.read_group(GROUP, "b", start=">", count=100)
    await LedgerCopy(store.outbox, ledger, metrics, consumer="w1").process(tail)
    await LedgerCopy(store.outbox, ledger, metrics, consumer="b").trim_and_measure()
    # Everything below a's first pending entry is gone; a's entries (and later ones) remain.
    assert await stream_ids(store) == ids[4:]
    assert {i for i, _ in held} <= set(await stream_ids(store))
    assert sample(metrics, "stocksync_ledger_lag_events") >= 3
    assert movement_count(engine, namespace) == 7  # 11 entries, a location event among them
    # Another group that has read nothing keeps the whole stream from being trimmed.
    await store.client.xgroup_create(stream, "audit", id="0")
    await LedgerCopy(store.outbox, ledger, metrics, consumer="b", claim_idle_ms=0).drain_once()
    assert await stream_ids(store) == ids[4:]
    assert movement_count(engine, namespace) == 10  # the location event has no movement row
    await store.client.xgroup_destroy(stream, "audit")
    await LedgerCopy(store.outbox, ledger, metrics, consumer="b").trim_and_measure()
    assert await stream_ids(store) == []


async def test_lag_seconds_is_the_age_of_the_oldest_unacknowledged_entry(
    store: RedisStockStore, namespace: str, ledger: SqlLedger, metrics: Metrics
) -> None:
    stream = store.keys.outbox
    old = await server_ms(store) - 5_000
    fields = {"kind": "location_upserted", "sku": "", "loc": "wh-9", "seq": "0", "at": str(old)}
    fields |= {"name": "W9", "loc_kind": "warehouse", "pickup": "0", "ship": "1"}
    await store.client.xadd(stream, fields, id=f"{old}-0")  # type: ignore[arg-type]
    await store.outbox.create_group(GROUP)
    await store.outbox.read_group(GROUP, "dead", start=">", count=10)
    await LedgerCopy(store.outbox, ledger, metrics, consumer="b", claim_idle_ms=60_000).drain_once()
    assert 4.5 <= sample(metrics, "stocksync_ledger_lag_seconds") < 60
    assert sample(metrics, "stocksync_ledger_lag_events") == 1
    await LedgerCopy(store.outbox, ledger, metrics, consumer="b", claim_idle_ms=0).drain_once()
    assert sample(metrics, "stocksync_ledger_lag_seconds") == 0
    assert sample(metrics, "stocksync_ledger_lag_events") == 0


async def test_the_loop_retries_a_failed_write_then_catches_up(
    store: RedisStockStore,
    stocked: Stocked,
    sku: str,
    namespace: str,
    engine: Engine,
    metrics: Metrics,
) -> None:
    ledger = SqlLedger(engine)
    real_record = ledger.record_entries
    calls = 0

    def flaky(entries: Mapping[str, Sequence[Entry]]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OperationalError("INSERT", {}, Exception("connection reset"))
        return real_record(entries)

    ledger.record_entries = flaky  # type: ignore[method-assign]
    sku_events = await make_events(store, stocked, sku, 3)
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: LedgerCopy(store.outbox, ledger, metrics, consumer="loop").run(
                block_ms=50,
                retry_initial_seconds=0.01,
            )
        )
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while movement_count(engine, namespace) < sku_events or (await pending(store))["pending"]:
            assert time.monotonic() < deadline, "the ledger writer did not catch up"
            await anyio.sleep(0.02)
        # Events written while it runs arrive too.
        await store.adjust(sku, "store-a", 5, reason="receipt", source="wms", source_event_id="r")
        while movement_count(engine, namespace) < sku_events + 1:
            assert time.monotonic() < deadline, "the ledger writer missed a new event"
            await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    assert sample(metrics, "stocksync_ledger_errors_total") == 1
    assert calls >= 2
    assert (await pending(store))["pending"] == 0


async def test_two_writers_share_the_stream_and_agree_with_one(
    store: RedisStockStore,
    stocked: Stocked,
    sku: str,
    namespace: str,
    engine: Engine,
    metrics: Metrics,
) -> None:
    """Two consumers split the events of the same reservations between their batches and
    write them concurrently: the ledger is the one a single in-order write gives."""
    await drive(store, stocked, sku, sku + "-b")
    events = await outbox_events(store, namespace)
    reference_ns = namespace + "ref"
    SqlLedger(engine).record(renamed(events, reference_ns))
    ledger = SqlLedger(engine)
    async with anyio.create_task_group() as tg:
        for consumer in ("w1", "w2"):
            tg.start_soon(
                lambda c=consumer: LedgerCopy(
                    store.outbox, ledger, metrics, consumer=c, batch=3
                ).run(
                    block_ms=50,
                    retry_initial_seconds=0.01,
                )
            )
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while await store.client.xlen(store.keys.outbox):
            assert time.monotonic() < deadline, "the ledger writers did not catch up"
            await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    assert dump(engine, namespace) == dump(engine, reference_ns)


async def test_entries_deleted_while_pending_are_acknowledged_not_stuck(
    store: RedisStockStore,
    stocked: Stocked,
    sku: str,
    namespace: str,
    engine: Engine,
    ledger: SqlLedger,
    metrics: Metrics,
) -> None:
    """An entry trimmed (XADD MAXLEN) before it was written cannot be recorded; it must not
    stay pending forever and hold back the trim and the lag."""
    sku_events = await make_events(store, stocked, sku, 3)
    ids = await stream_ids(store)
    await store.outbox.create_group(GROUP)
    await store.outbox.read_group(GROUP, "dead", start=">", count=100)
    await store.client.xdel(store.keys.outbox, ids[-1])  # a sale event
    done = await LedgerCopy(
        store.outbox, ledger, metrics, consumer="b", claim_idle_ms=0
    ).drain_once()
    assert done == len(ids)
    assert movement_count(engine, namespace) == sku_events - 1
    assert (await pending(store))["pending"] == 0
    assert await stream_ids(store) == []
    assert sample(metrics, "stocksync_ledger_lag_seconds") == 0


async def test_a_dead_connector_group_stops_holding_back_the_trim(
    store: RedisStockStore,
    stocked: Stocked,
    sku: str,
    namespace: str,
    engine: Engine,
    ledger: SqlLedger,
    metrics: Metrics,
) -> None:
    """A connector killed without a clean stop leaves its group with pending entries; once
    all its consumers have been idle past the bound, the outbox is trimmed past it."""
    await make_events(store, stocked, sku, 3)
    ids = await stream_ids(store)
    await store.outbox.create_group("connector:shop")
    taken = await store.outbox.read_group("connector:shop", "killed", start=">", count=100)
    assert len(taken) == len(ids)  # read, never acknowledged: the process was killed
    patient = LedgerCopy(store.outbox, ledger, metrics, consumer="w1", dead_group_idle_ms=60_000)
    await patient.drain_once()
    assert await stream_ids(store) == ids  # a live group's pending entries are kept
    assert sample(metrics, "stocksync_outbox_dead_groups") == 0
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while True:  # the idle clock has millisecond resolution: wait until it has moved
        consumers = await store.client.xinfo_consumers(store.keys.outbox, "connector:shop")
        if int(consumers[0]["idle"]) > 1:
            break
        assert time.monotonic() < deadline
        await anyio.sleep(0.002)
    strict = LedgerCopy(store.outbox, ledger, metrics, consumer="w1", dead_group_idle_ms=1)
    await strict.drain_once()
    assert await stream_ids(store) == []
    assert sample(metrics, "stocksync_outbox_dead_groups") == 1
    assert movement_count(engine, namespace) == len(ids) - 1  # the location event has no SKU
