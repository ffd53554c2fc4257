"""The audit against a real Redis and SQL ledger, and the drift metric the workers export."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import anyio
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from stocksync.domain.model import Line, Location
from stocksync.ledger.db import make_engine
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.recovery.audit import AuditReport, audit, audit_lease, run_audits
from stocksync.store.keys import ON_HAND, RESERVED
from stocksync.store.outbox import decode_event
from stocksync.store.redis_store import RedisStockStore
from tests.support.store import Stocked


def sample(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def record_outbox(store: RedisStockStore, engine: Engine, namespace: str) -> None:
    raw = await store.client.xrange(store.keys.outbox)
    SqlLedger(engine).record([decode_event(namespace, sid, fields) for sid, fields in raw])


async def test_audit_finds_no_drift_then_the_drift_a_lost_write_makes(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 5)
    await store.reserve("r1", "web", [Line(sku, "store-a", 2)], 600)
    await store.fulfill("r1")
    await record_outbox(store, engine, namespace)
    clean = await audit(store, engine, namespace)
    assert (clean.positions, clean.in_flight, clean.drifts) == (1, 0, [])
    # A change that bypassed the scripts (no event, so the ledger cannot know of it).
    await store.client.hincrby(store.keys.position(sku, "store-a"), ON_HAND, -1)
    drifted = await audit(store, engine, namespace)
    assert [(d.redis_on_hand, d.ledger_on_hand) for d in drifted.drifts] == [(2, 3)]
    assert drifted.drift_units == 1


async def test_audit_counts_unrecorded_events_as_in_flight(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 5)
    await record_outbox(store, engine, namespace)
    await store.reserve("r1", "web", [Line(sku, "store-a", 1)], 600)  # not yet in the ledger
    report = await audit(store, engine, namespace)
    assert (report.positions, report.in_flight, report.drifts) == (0, 1, [])


async def test_run_audits_exports_the_drift_metric(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 5)
    await record_outbox(store, engine, namespace)
    await store.client.hincrby(store.keys.position(sku, "store-a"), RESERVED, 3)
    metrics = Metrics()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_audits, store, engine, namespace, metrics, 0.05)
            # The worker only sets a gauge: poll it, bounded by fail_after.
            while not sample(metrics, "stocksync_ledger_drift_units"):  # noqa: ASYNC110
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert sample(metrics, "stocksync_ledger_drift_units") == 3
    assert sample(metrics, "stocksync_ledger_drift_positions") == 1


async def command_calls(store: RedisStockStore) -> dict[str, int]:
    """Calls per command so far, from the server's own counters (INFO commandstats)."""
    stats = await store.client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def seed_grid(store: RedisStockStore, skus: list[str], locations: list[str]) -> None:
    for loc in locations:
        await store.upsert_location(Location(loc, loc.title(), "store", 52.5, 13.4, True, True))
    calls = [store.count_call(s, loc, 10 + i) for i, s in enumerate(skus) for loc in locations]
    for start in range(0, len(calls), 500):
        await store.stock_changes(calls[start : start + 500])


async def test_audit_pages_find_planted_drift_among_many_positions_without_a_call_per_sku(
    engine: Engine, store: RedisStockStore, sku: str, namespace: str
) -> None:
    skus = [f"{sku}-{i:03d}" for i in range(60)]
    locations = [f"grid-{j}" for j in range(10)]
    await seed_grid(store, skus, locations)
    await record_outbox(store, engine, namespace)
    # Planted: a lost write, a position only Redis has (of a settled SKU), a SKU in flight.
    await store.client.hincrby(store.keys.position(skus[17], "grid-3"), ON_HAND, -2)
    await store.client.hset(store.keys.position(skus[40], "grid-x"), RESERVED, 4)
    await store.reserve("in-flight", "web", [Line(skus[5], "grid-1", 1)], 600)
    page = 50
    before = await command_calls(store)
    report = await audit(store, engine, namespace, page=page)
    after = await command_calls(store)

    assert sorted((d.sku, d.location_id, d.units) for d in report.drifts) == [
        (skus[17], "grid-3", 2),
        (skus[40], "grid-x", 4),
    ]
    assert report.in_flight == len(locations)  # every position of the SKU in flight
    assert report.positions == len(skus) * len(locations) - len(locations) + 1
    # Round trips by page, not by SKU or position: 600 positions, 50 a call, plus the SCAN
    # steps over the whole server's keyspace (other tests' keys too).
    keyspace = await store.client.dbsize()
    fcalls = after.get("fcall", 0) - before.get("fcall", 0)
    assert fcalls <= 600 // page + keyspace // page + 4, (fcalls, keyspace)
    for per_key in ("smembers", "hgetall"):
        assert after.get(per_key, 0) == before.get(per_key, 0), per_key


async def test_audit_with_a_small_page_equals_one_large_page(
    engine: Engine, store: RedisStockStore, sku: str, namespace: str
) -> None:
    skus = [f"{sku}-{i:02d}" for i in range(12)]
    await seed_grid(store, skus, ["grid-a", "grid-b", "grid-c"])
    await record_outbox(store, engine, namespace)
    await store.client.hincrby(store.keys.position(skus[11], "grid-c"), RESERVED, 1)
    small = await audit(store, engine, namespace, page=7)
    large = await audit(store, engine, namespace, page=1000)
    assert small == large
    assert [(d.sku, d.units) for d in small.drifts] == [(skus[11], 1)]


async def test_audit_splits_a_sku_larger_than_a_page_and_judges_redis_only_positions(
    engine: Engine, store: RedisStockStore, sku: str, namespace: str
) -> None:
    skus = [f"{sku}-{i}" for i in range(3)]
    locations = [f"grid-{j:02d}" for j in range(12)]
    await seed_grid(store, skus, locations)
    await record_outbox(store, engine, namespace)
    # Planted: drift in the last page of a SKU split over three calls; positions only Redis
    # has: one of a settled SKU at zero (compared, no drift), one of a SKU the ledger has
    # never seen (in flight, not drift).
    await store.client.hincrby(store.keys.position(skus[1], "grid-11"), ON_HAND, 3)
    await store.client.hset(store.keys.position(skus[2], "grid-zero"), "s", 0)
    await store.client.hset(store.keys.position(f"{sku}-new", "grid-00"), ON_HAND, 7)
    split = await audit(store, engine, namespace, page=5, scan_count=3)
    whole = await audit(store, engine, namespace, page=1000)

    assert split == whole
    assert [(d.sku, d.location_id, d.redis_on_hand - d.ledger_on_hand) for d in split.drifts] == [
        (skus[1], "grid-11", 3)
    ]
    assert split.positions == len(skus) * len(locations) + 1  # and the zero one
    assert split.in_flight == 1


async def test_audit_raises_the_stage_error_itself_so_the_loop_can_log_it(
    store: RedisStockStore, stocked: Stocked, sku: str, namespace: str, tmp_path: Path
) -> None:
    await stocked(sku, 5)
    no_tables = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # a ledger never set up
    try:
        with pytest.raises(SQLAlchemyError):  # what run_audits catches, not an exception group
            await audit(store, no_tables, namespace)
    finally:
        no_tables.dispose()


async def first_to_finish(events: list[anyio.Event]) -> int:
    """The index of the first of ``events`` to be set."""
    winner: list[int] = []
    async with anyio.create_task_group() as tg:

        async def wait(i: int) -> None:
            await events[i].wait()
            winner.append(i)
            tg.cancel_scope.cancel()

        for i in range(len(events)):
            tg.start_soon(wait, i)
    return winner[0]


async def test_two_audit_loops_only_the_lease_holder_audits_until_it_stops(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await stocked(sku, 5)
    await record_outbox(store, engine, namespace)
    counts = [0, 0]
    enough = [anyio.Event(), anyio.Event()]

    def counter(i: int) -> Callable[[AuditReport], None]:
        def seen(_: AuditReport) -> None:
            counts[i] += 1
            if counts[i] >= 5:
                enough[i].set()

        return seen

    def loop(i: int) -> Callable[[], Awaitable[None]]:
        # Two processes: each its own Lease object (its own token) on the same key.
        lease = audit_lease(store, 0.01)
        return partial(
            run_audits, store, engine, namespace, Metrics(), 0.01, lease=lease, on_report=counter(i)
        )

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            first = anyio.CancelScope()
            second = anyio.CancelScope()

            async def run(scope: anyio.CancelScope, job: Callable[[], Awaitable[None]]) -> None:
                with scope:
                    await job()

            tg.start_soon(run, first, loop(0))
            tg.start_soon(run, second, loop(1))
            leader = await first_to_finish(enough)
            follower = 1 - leader
            assert counts[follower] == 0, counts  # five intervals, one auditor
            (first, second)[leader].cancel()  # the holder stops cleanly: releases its lease
            await enough[follower].wait()
            assert counts[follower] >= 5
            tg.cancel_scope.cancel()
    assert await store.client.exists(store.keys.lease("audit")) == 0  # released on cancel
