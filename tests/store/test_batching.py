"""Group commit and the function library, against a real server.

Operations submitted together ride one ``batch`` FCALL; the batch-size observer (the metric's
callback) shows how they were grouped, so no test relies on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from importlib import resources

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from stocksync.config import Settings
from stocksync.domain.errors import IdempotencyConflict, InsufficientStock, StoreBusy
from stocksync.domain.model import Line, ReserveResult
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.scripts import OPERATIONS, build_library, library
from tests.support.store import Stocked

TTL = 600
HEAD = [3600, 0, "actor"]  # retention, outbox cap, then (no arguments) who acts


class Sizes(list[int]):
    """Sizes of the batch FCALLs a store sent, in order. A reserve sends two at once: its
    claim of the id in the namespace's directory, and its hold in the stock domain."""


@pytest.fixture
def sizes() -> Sizes:
    return Sizes()


@pytest.fixture
async def batched(redis_client: Redis, namespace: str, sizes: Sizes) -> RedisStockStore:
    """The test's namespace on a store whose batch sizes are recorded."""
    store = RedisStockStore(redis_client, Settings(namespace=namespace), observe_batch=sizes.append)
    await store.load_library(prune=False)
    return store


async def test_a_lone_reserve_goes_out_alone(
    batched: RedisStockStore, stocked: Stocked, sizes: Sizes, sku: str
) -> None:
    await stocked(sku, 5)
    await batched.domain_of_location("store-a")  # routed once, as in a running process
    sizes.clear()
    result = await batched.reserve("alone", "web", [Line(sku, "store-a", 1)], TTL)
    assert result.created
    # Its hold and its claim, each flushed on the next loop turn: they waited for no company.
    assert sizes == [1, 1]


async def test_a_short_reservation_fails_only_itself_in_its_batch(
    batched: RedisStockStore, stocked: Stocked, sizes: Sizes, sku: str
) -> None:
    await stocked(sku, 3)
    await batched.domain_of_location("store-a")  # routed once, as in a running process
    sizes.clear()
    outcomes = await asyncio.gather(
        batched.reserve("a", "web", [Line(sku, "store-a", 2)], TTL),
        batched.reserve("b", "web", [Line(sku, "store-a", 5)], TTL),
        batched.reserve("c", "web", [Line(sku, "store-a", 1)], TTL),
        return_exceptions=True,
    )
    assert sizes == [3, 3]  # three holds in one batch, three claims in one
    a, b, c = outcomes
    assert isinstance(a, ReserveResult)
    assert isinstance(b, InsufficientStock)
    assert isinstance(c, ReserveResult)
    position = await batched.position(sku, "store-a")
    assert (position.reserved, position.available) == (3, 0)
    assert (await batched.client.exists(batched.keys.reservation("b"))) == 0


async def test_operations_on_one_position_apply_in_arrival_order(
    batched: RedisStockStore, stocked: Stocked, sizes: Sizes, sku: str
) -> None:
    await stocked(sku, 0)
    await batched.domain_of_location("store-a")  # routed once, as in a running process
    sizes.clear()
    line = [Line(sku, "store-a", 1)]
    outcomes = await asyncio.gather(
        batched.reserve("before", "web", line, TTL),  # nothing on hand yet: refused
        batched.set_count(sku, "store-a", 2),
        batched.reserve("first", "web", line, TTL),
        batched.reserve("second", "web", line, TTL),
        batched.reserve("third", "web", line, TTL),  # the count covers two
        return_exceptions=True,
    )
    assert sorted(sizes) == [4, 5]  # one batch of the five; one of the four reserves' claims
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == [
        "InsufficientStock",
        "StockChangeResult",
        "ReserveResult",
        "ReserveResult",
        "InsufficientStock",
    ]


async def test_a_reservation_id_twice_in_one_batch_is_held_once(
    batched: RedisStockStore, stocked: Stocked, sizes: Sizes, sku: str
) -> None:
    await stocked(sku, 10)
    await batched.domain_of_location("store-a")  # routed once, as in a running process
    sizes.clear()
    line = [Line(sku, "store-a", 3)]
    first, again, other_body = await asyncio.gather(
        batched.reserve("dup", "web", line, TTL),
        batched.reserve("dup", "web", line, TTL),
        batched.reserve("dup", "web", [Line(sku, "store-a", 4)], TTL),
        return_exceptions=True,
    )
    assert sizes == [3, 3]
    assert isinstance(first, ReserveResult)
    assert isinstance(again, ReserveResult)
    assert (first.created, again.created) == (True, False)
    assert again.reservation.lines == first.reservation.lines
    assert isinstance(other_body, IdempotencyConflict)
    assert (await batched.position(sku, "store-a")).reserved == 3


async def test_a_lua_error_fails_only_its_own_operation(
    batched: RedisStockStore, stocked: Stocked, sizes: Sizes, sku: str
) -> None:
    await stocked(sku, 1)
    await batched.domain_of_location("store-a")  # routed once, as in a running process
    sizes.clear()
    fp = "fp"
    broken = ("set_count", (sku, "store-a", "not-a-number", "", "", "", "api", "", fp))
    fine = batched.count_call(sku, "store-a", 7)
    replies = await batched.run_many([broken, (fine.script, (sku, "store-a", *fine.args))])
    assert sizes == [2]
    assert isinstance(replies[0], ResponseError)
    assert "set_count" in str(replies[0])
    assert replies[1][0] == "ok"
    assert (await batched.position(sku, "store-a")).on_hand == 7


async def test_a_full_queue_refuses_and_changes_nothing(
    redis_client: Redis, namespace: str, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    small = RedisStockStore(redis_client, Settings(namespace=namespace), queue_max=3)

    def call(n: int) -> tuple[str, Sequence[str | int]]:
        c = small.count_call(sku, "store-a", n)
        return c.script, (sku, "store-a", *c.args)

    queued = small.batcher.submit([call(n) for n in (1, 2, 3)], "")  # the queue is full now
    with pytest.raises(StoreBusy) as refused:
        await small.run_many([call(9)])
    assert (refused.value.status, refused.value.code) == (503, "store_busy")
    assert refused.value.retry_after_seconds is not None
    assert [r[0] for r in await asyncio.gather(*queued)] == ["ok", "ok", "ok"]
    assert small.batcher.queued == 0
    assert (await small.position(sku, "store-a")).on_hand == 3  # the refused count never ran


async def test_more_calls_at_once_than_the_queue_holds_is_a_caller_s_error(
    redis_client: Redis, namespace: str, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    small = RedisStockStore(redis_client, Settings(namespace=namespace), queue_max=2)
    calls = [small.count_call(sku, "store-a", n) for n in (1, 2, 3)]
    with pytest.raises(ValueError, match="at most 2"):
        await small.run_many([(c.script, (sku, "store-a", *c.args)) for c in calls])
    assert small.batcher.queued == 0
    assert (await small.position(sku, "store-a")).on_hand == 5


async def test_many_operations_share_batches_bounded_in_size(
    redis_client: Redis, namespace: str, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 0)
    sizes = Sizes()
    store = RedisStockStore(
        redis_client, Settings(namespace=namespace), observe_batch=sizes.append, batch_max=4
    )
    calls = [
        store.adjust_call(sku, "store-a", 1, reason="r", source="pos", source_event_id=f"e{i}")
        for i in range(10)
    ]
    replies = await store.run_many([(c.script, (c.sku, c.location_id, *c.args)) for c in calls])
    assert [int(r[2]) for r in replies] == list(range(1, 11))  # on_hand after each, in order
    assert sizes == [4, 4, 2]  # one batch in flight; the rest gathered behind it


@pytest.fixture
async def other_build(redis_client: Redis, namespace: str) -> AsyncIterator[RedisStockStore]:
    """A store of another build: its reserve answers a marker instead of holding stock."""
    lua = resources.files("stocksync.store") / "lua"
    bodies = {name: (lua / f"{name}.lua").read_text() for name in OPERATIONS}
    bodies["reserve"] = "return { 'other_build' }"
    functions = build_library(bodies)
    store = RedisStockStore(redis_client, Settings(namespace=namespace), functions=functions)
    yield store
    with contextlib.suppress(ResponseError):  # pruned by the test already
        await redis_client.function_delete(functions.name)


async def test_two_builds_never_run_each_others_functions(
    store: RedisStockStore, other_build: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    assert other_build.library.version != store.library.version
    assert other_build.library.function("reserve") != store.library.function("reserve")
    await other_build.load_library(prune=False)
    await store.load_library(prune=False)
    assert {store.library.name, other_build.library.name} <= set(await store.libraries())
    assert await other_build.fcall("reserve", HEAD) == ["other_build"]
    mine = await store.reserve("mine", "web", [Line(sku, "store-a", 1)], TTL)
    assert mine.created


async def test_a_start_prunes_other_builds_which_load_theirs_again_on_their_next_call(
    store: RedisStockStore, other_build: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    await other_build.load_library(prune=False)
    pruned = await store.load_library()  # a process of this build starts
    assert other_build.library.name in pruned
    assert other_build.library.name not in await store.libraries()
    assert await other_build.fcall("reserve", HEAD) == ["other_build"]  # reloaded, retried
    assert await other_build.library_loaded()
    assert await store.library_loaded()


async def test_a_server_that_lost_its_functions_gets_them_back_on_the_next_call(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    await store.client.function_flush()  # as a restart without data, or a fresh replica
    assert not await store.library_loaded()
    assert (await store.reserve("after", "web", [Line(sku, "store-a", 1)], TTL)).created
    await store.client.function_flush()
    assert (await store.position(sku, "store-a")).reserved == 1  # a direct FCALL reloads too
    assert await store.library_loaded()
    assert library().name == store.library.name
