"""stock_changes.lua against a real Redis: a batch of counts and deltas gives, row by row, what
set_count.lua and adjust.lua give applying the same rows one at a time."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from stocksync.config import Settings
from stocksync.domain.errors import StockSyncError
from stocksync.domain.model import Line
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.stock_changes import STOCK_ROWS_PER_CALL, StockCall, StockRowResult
from tests.support.store import add_location, outbox, server_ms, wait_for_server_ms_after

LOCATIONS = ("store-a", "store-b")
MINUTE_MS = 60_000


@dataclass(frozen=True)
class Row:
    """A count or a delta, in terms both paths take; ``at``: minutes ago (None: now)."""

    kind: str  # "count" | "delta"
    sku: str
    location_id: str
    value: int
    at: int | None
    event_id: str


def call(store: RedisStockStore, row: Row, base_ms: int) -> StockCall:
    at_ms = None if row.at is None else base_ms - row.at * MINUTE_MS
    if row.kind == "count":
        return store.count_call(
            row.sku, row.location_id, row.value, as_of_ms=at_ms, source="wms",
            source_event_id=row.event_id or None,
        )  # fmt: skip
    return store.adjust_call(
        row.sku, row.location_id, row.value, reason="receipt", source="wms",
        source_event_id=row.event_id, occurred_at_ms=at_ms,
    )  # fmt: skip


def outcome(result: StockRowResult | StockSyncError) -> str:
    return result.code if isinstance(result, StockSyncError) else result.outcome


async def one_by_one(store: RedisStockStore, calls: list[StockCall]) -> list[str]:
    """The outcome of each call run alone, through set_count.lua or adjust.lua."""
    outcomes = []
    for c in calls:
        try:
            result = await store.stock_change(c)
        except StockSyncError as exc:
            outcomes.append(exc.code)
            continue
        outcomes.append(
            "duplicate" if result.replayed else "applied" if result.applied else "stale"
        )
    return outcomes


async def state(store: RedisStockStore, skus: set[str]) -> tuple[object, ...]:
    """Positions and the outbox (without times, which differ between two runs)."""
    positions = []
    for sku in sorted(skus):
        for p, _ in await store.positions(sku, LOCATIONS):
            positions.append((p.sku, p.location_id, p.on_hand, p.reserved))
    events = [
        (e["kind"], e["sku"], e["loc"], e["seq"], e.get("on_hand"), e.get("d_on_hand"))
        for e in await outbox(store)
        if e["kind"] not in ("location",)
    ]
    return tuple(positions), tuple(events)


async def two_stores(client: Redis) -> tuple[RedisStockStore, RedisStockStore]:
    stores = []
    for _ in range(2):
        store = RedisStockStore(client, Settings(namespace="sc" + uuid.uuid4().hex[:12]))
        for loc in LOCATIONS:
            await add_location(store, loc)
        stores.append(store)
    return stores[0], stores[1]


async def compare(url: str, rows: list[Row], frozen: str | None = None) -> list[str]:
    """Apply ``rows`` batched in one namespace and one by one in another; assert both give
    the same outcomes, positions and events. Returns the outcomes."""
    client = Redis.from_url(url, decode_responses=True)
    try:
        batched, single = await two_stores(client)
        if frozen:
            for store in (batched, single):
                await client.sadd(store.keys.regressed, frozen)
        base_ms = await server_ms(batched) - MINUTE_MS
        results = await batched.stock_changes([call(batched, r, base_ms) for r in rows])
        alone = await one_by_one(single, [call(single, r, base_ms) for r in rows])
        assert [outcome(r) for r in results] == alone
        skus = {r.sku for r in rows}
        assert await state(batched, skus) == await state(single, skus)
        return alone
    finally:
        await client.aclose()


async def test_stock_changes_mixed_batch_matches_rows_applied_one_by_one(redis_url: str) -> None:
    rows = [
        Row("count", "A", "store-a", 10, 30, "c1"),  # applied
        Row("count", "A", "store-a", 4, 40, "c2"),  # stale: older than the count applied
        Row("count", "A", "store-a", 10, 30, "c1"),  # duplicate inside the batch
        Row("count", "A", "store-a", 11, 30, "c1"),  # same id, other count: conflict
        Row("delta", "A", "store-a", 3, 35, "r1"),  # before the count: recorded, stale
        Row("delta", "A", "store-a", 5, 20, "r2"),  # after it: applied
        Row("count", "A", "nowhere", 1, 10, "c3"),  # unknown location
        Row("count", "F", "store-b", 1, 10, "c4"),  # a frozen SKU
        Row("count", "B", "store-b", 7, None, ""),  # no event id, as of now
        Row("delta", "B", "store-b", -2, None, "s1"),  # now: after any count
        Row("count", "A", "store-a", 20, 10, "c5"),  # newer: applied, keeps r2
    ]
    outcomes = await compare(redis_url, rows, frozen="F")
    assert outcomes == [
        "applied", "stale", "duplicate", "idempotency_conflict", "stale", "applied",
        "not_found", "stock_regressed", "applied", "applied", "applied",
    ]  # fmt: skip


async def test_stock_changes_resent_after_a_lost_reply_applies_nothing_twice(
    store: RedisStockStore, sku: str
) -> None:
    for loc in LOCATIONS:
        await add_location(store, loc)
    base_ms = await server_ms(store) - MINUTE_MS
    rows = [Row("delta", sku, LOCATIONS[i % 2], i + 1, 5, f"r{i}") for i in range(250)]
    calls = [call(store, r, base_ms) for r in rows]
    # The first call's reply was lost (a crash, a timeout): the import sends it all again.
    first = await store.stock_changes(calls[:STOCK_ROWS_PER_CALL])
    events_before = len(await outbox(store, sku))

    again = await store.stock_changes(calls)

    assert [outcome(r) for r in again] == ["duplicate"] * STOCK_ROWS_PER_CALL + ["applied"] * (
        len(rows) - STOCK_ROWS_PER_CALL
    )
    assert len(await outbox(store, sku)) == events_before + len(rows) - STOCK_ROWS_PER_CALL
    for j, loc in enumerate(LOCATIONS):
        expected = sum(i + 1 for i in range(len(rows)) if i % 2 == j)
        assert (await store.position(sku, loc)).on_hand == expected
    assert [r.seq for r in again[:STOCK_ROWS_PER_CALL]] == [r.seq for r in first]  # originals'
    once_more = await store.stock_changes(calls)
    assert {outcome(r) for r in once_more} == {"duplicate"}
    assert sorted(r.seq for r in once_more) == list(range(1, len(rows) + 1))


async def test_stock_changes_reap_due_holds_before_counting(
    store: RedisStockStore, sku: str
) -> None:
    await add_location(store, "store-a")
    await store.set_count(sku, "store-a", 5)
    await store.reserve("due", "web", [Line(sku, "store-a", 2)], ttl_seconds=1)
    deadline = (await store.get_reservation("due")).expires_at_ms
    assert deadline is not None
    await wait_for_server_ms_after(store, deadline)

    [result] = await store.stock_changes([store.count_call(sku, "store-a", 9, source="wms")])

    assert outcome(result) == "applied"
    *_, expired, counted = await outbox(store, sku)
    assert (expired["kind"], expired["res"]) == ("expired", "due")  # reaped first, then counted
    assert (counted["kind"], counted["on_hand"], counted["reserved"]) == ("counted", "9", "0")


row_strategy = st.builds(
    Row,
    st.sampled_from(("count", "delta")),
    st.sampled_from(("A", "B")),
    st.sampled_from((*LOCATIONS, "nowhere")),
    st.integers(1, 30),
    st.one_of(st.none(), st.integers(0, 6)),
    st.sampled_from(("e1", "e2", "e3", "e4", "e5", "e6")),
)
# Rows drawn from a small pool, so the same row comes again (a duplicate) as often as the
# same id with another body (a conflict).
rows_strategy = st.lists(row_strategy, min_size=1, max_size=12).flatmap(
    lambda pool: st.lists(st.sampled_from(pool), min_size=1, max_size=40)
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=rows_strategy)
def test_stock_changes_rows_give_what_each_gives_alone(redis_url: str, rows: list[Row]) -> None:
    asyncio.run(compare(redis_url, rows))
