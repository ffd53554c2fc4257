"""A till sale naming a hold, racing the hold's release and expiry: the sale is never lost.

The gateway used to read the reservation and fulfil it in a second call; a hold that ended in
between made the fulfilment fail and the sale was dead-lettered, leaving a unit on hand that
had left the store (DESIGN rule 8: a till cannot be refused). A sale is now one script call.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from redis.asyncio import BlockingConnectionPool, Redis
from sqlmodel import Session, col, select

from connectors.framework.commands import Sale
from connectors.framework.gateway import Applied, EngineGateway
from stocksync.config import Settings
from stocksync.domain.errors import InvalidTransition
from stocksync.domain.model import ACTIVE, DEFAULT_DOMAIN, Line, Location, State
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sale_commits import SaleCommitter
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.ledger.tables import Movement
from stocksync.plugins import EngineContext
from stocksync.store.redis_store import RedisStockStore

Stocked = Callable[..., Any]
HoldEnding = Callable[[RedisStockStore, str], Awaitable[object]]
LOC = "store-a"
CONNECTIONS = 64


async def release(store: RedisStockStore, reservation_id: str) -> None:
    await store.release(reservation_id)


async def lapse(store: RedisStockStore, reservation_id: str) -> None:
    """The hold's deadline arrives now: the next script on its SKU (or the reaper) expires it."""
    await store.extend(reservation_id, ttl_seconds=0)


class HoldEndsAroundFirstCall(RedisStockStore):
    """A forced interleaving: ends a hold right before, or right after, the first script call
    made through this store (for the old gateway, between its read and its write)."""

    def __init__(
        self, base: RedisStockStore, reservation_id: str, end: HoldEnding, *, before: bool
    ) -> None:
        super().__init__(base.client, base.settings)
        self._base = base
        self._pending: tuple[str, HoldEnding] | None = (reservation_id, end)
        self._before = before

    async def run(self, name: str, *args: str | int, domain: str = DEFAULT_DOMAIN) -> Any:
        pending, self._pending = self._pending, None
        if pending and self._before:
            await self._end(*pending)
        reply = await super().run(name, *args, domain=domain)
        if pending and not self._before:
            await self._end(*pending)
        return reply

    async def _end(self, reservation_id: str, end: HoldEnding) -> None:
        with suppress(InvalidTransition):  # the sale got there first: the hold is fulfilled
            await end(self._base, reservation_id)


async def units(store: RedisStockStore, sku: str) -> tuple[int, int]:
    position = await store.position(sku, LOC)
    return position.on_hand, position.reserved


@pytest.mark.parametrize("end", [release, lapse])
async def test_gateway_sale_of_a_hold_ending_after_the_first_call_is_not_lost(
    ctx: EngineContext, stocked: Stocked, sku: str, end: HoldEnding
) -> None:
    await stocked(sku, 3)
    await ctx.store.reserve("pickup-1", "chat", [Line(sku, LOC, 1)], ttl_seconds=600)
    racing = replace(ctx, store=HoldEndsAroundFirstCall(ctx.store, "pickup-1", end, before=False))
    sale = Sale(sku, LOC, 1, "square", "sq-race-1", reservation_id="pickup-1")
    assert await EngineGateway(racing).apply(sale) is Applied.APPLIED
    assert await units(ctx.store, sku) == (2, 0)
    assert (await ctx.store.get_reservation("pickup-1")).state is State.FULFILLED
    assert await EngineGateway(ctx).apply(sale) is Applied.DUPLICATE
    assert await units(ctx.store, sku) == (2, 0)


@pytest.mark.parametrize(("end", "ended"), [(release, State.RELEASED), (lapse, State.EXPIRED)])
async def test_gateway_sale_of_a_hold_that_ended_just_before_is_a_plain_sale(
    ctx: EngineContext, stocked: Stocked, sku: str, end: HoldEnding, ended: State
) -> None:
    await stocked(sku, 3)
    await ctx.store.reserve("pickup-2", "chat", [Line(sku, LOC, 1)], ttl_seconds=600)
    racing = replace(ctx, store=HoldEndsAroundFirstCall(ctx.store, "pickup-2", end, before=True))
    sale = Sale(sku, LOC, 2, "square", "sq-race-2", reservation_id="pickup-2")
    assert await EngineGateway(racing).apply(sale) is Applied.APPLIED
    assert await units(ctx.store, sku) == (1, 0)  # both units sold once, the hold gave its back
    assert (await ctx.store.get_reservation("pickup-2")).state is ended


# -- the property: many till sales racing their holds' release and expiry -----------------


@dataclass(frozen=True)
class Hold:
    qty: int
    fate: str  # kept | released | lapses (its deadline arrives during the race)
    beyond: int | None  # units the till sells beyond the hold; None: no till sale names it
    deliveries: int  # how often the sale naming it is delivered (a redelivery is a duplicate)


holds = st.builds(
    Hold,
    qty=st.integers(1, 3),
    fate=st.sampled_from(["kept", "released", "lapses"]),
    beyond=st.none() | st.integers(0, 2),
    deliveries=st.integers(1, 2),
)
# Sales naming no hold (None) or a reservation the engine never saw.
plain_sales = st.lists(st.tuples(st.integers(1, 3), st.booleans()), max_size=4)


@dataclass
class Race:
    ctx: EngineContext
    gateway: EngineGateway

    @property
    def store(self) -> RedisStockStore:
        return self.ctx.store

    async def close(self) -> None:
        await self.store.client.aclose()
        await self.store.client.connection_pool.disconnect()


async def open_race(redis_url: str, settings: Settings) -> Race:
    pool = BlockingConnectionPool.from_url(
        redis_url, max_connections=CONNECTIONS, timeout=10, decode_responses=True
    )
    client = Redis(connection_pool=pool)
    await asyncio.gather(*(client.ping() for _ in range(CONNECTIONS)))
    store = RedisStockStore(client, settings)
    await store.upsert_location(Location(LOC, "Store A", "store", 52.52, 13.40, True, True))
    engine = make_engine(settings.sqlalchemy_url)
    create_tables(engine)
    ledger = SqlLedger(engine)
    ctx = EngineContext(settings, store, engine, ledger, CollectorRegistry(), SaleCommitter(ledger))
    return Race(ctx, EngineGateway(ctx))


Shuffle = Callable[[Sequence[int]], Sequence[int]]


async def race_example(
    race: Race, held: list[Hold], plain: list[tuple[int, bool]], reapers: int, shuffle: Shuffle
) -> None:
    run = uuid.uuid4().hex[:10]
    sku = f"R-{run}"
    ids = [f"{run}-h{i}" for i in range(len(held))]
    initial = sum(h.qty for h in held) + 2
    await race.store.set_count(sku, LOC, initial)
    for rid, h in zip(ids, held, strict=True):
        await race.store.reserve(rid, "web", [Line(sku, LOC, h.qty)], ttl_seconds=600)

    sales: dict[str, list[Sale]] = {}
    for rid, h in zip(ids, held, strict=True):
        if h.beyond is not None:
            sale = Sale(sku, LOC, h.qty + h.beyond, "square", f"{rid}-sale", reservation_id=rid)
            sales[sale.source_event_id] = [sale] * h.deliveries
    for i, (qty, names_unknown) in enumerate(plain):
        unknown = f"{run}-never-held" if names_unknown else None
        sale = Sale(sku, LOC, qty, "square", f"{run}-p{i}", reservation_id=unknown)
        sales[sale.source_event_id] = [sale]

    outcomes: dict[str, list[Applied]] = {event_id: [] for event_id in sales}

    async def sell(sale: Sale) -> None:
        outcomes[sale.source_event_id].append(await race.gateway.apply(sale))

    async def end(rid: str, ending: HoldEnding) -> None:
        with suppress(InvalidTransition):  # the sale (or the other ending) came first
            await ending(race.store, rid)

    async def reap() -> None:
        await race.store.reap()

    calls: list[Callable[[], Awaitable[None]]] = [
        partial(sell, sale) for copies in sales.values() for sale in copies
    ]
    for rid, h in zip(ids, held, strict=True):
        if h.fate != "kept":
            calls.append(partial(end, rid, release if h.fate == "released" else lapse))
    calls += [reap] * reapers
    gate = asyncio.Event()

    async def start(call: Callable[[], Awaitable[None]]) -> None:
        await gate.wait()
        await call()

    tasks = [asyncio.create_task(start(calls[i])) for i in shuffle(range(len(calls)))]
    await asyncio.sleep(0)  # every task waits at the gate
    gate.set()
    await asyncio.gather(*tasks)

    # Each sale counted once, whatever its hold's fate; a redelivery changes nothing.
    assert all(sorted(o) == ["applied"] + ["duplicate"] * (len(o) - 1) for o in outcomes.values())
    sold = sum(copies[0].qty for copies in sales.values())
    on_hand, reserved = await units(race.store, sku)  # reaps the holds that lapsed
    states = [(await race.store.get_reservation(rid)).state for rid in ids]
    assert on_hand == initial - sold
    assert reserved == sum(h.qty for h, s in zip(held, states, strict=True) if s in ACTIVE)
    fulfilled = {rid for rid, s in zip(ids, states, strict=True) if s is State.FULFILLED}
    assert fulfilled <= {rid for rid, h in zip(ids, held, strict=True) if h.beyond is not None}
    with Session(race.ctx.engine) as session:  # each fulfilment was in the ledger before its ack
        written = session.exec(
            select(Movement.reservation_id).where(
                Movement.kind == "fulfilled", col(Movement.reservation_id).in_(ids)
            )
        ).all()
    assert set(written) == fulfilled


def test_till_sales_racing_holds_release_and_expiry_count_every_unit_once(
    redis_url: str, settings: Settings
) -> None:
    # One event loop, pool and ledger for all examples (hypothesis drives a sync test); a
    # fresh SKU per example keeps the examples apart on the test's namespace.
    with asyncio.Runner() as runner:
        race = runner.run(open_race(redis_url, settings))

        @examples(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            held=st.lists(holds, min_size=1, max_size=8),
            plain=plain_sales,
            reapers=st.integers(0, 2),
            data=st.data(),
        )
        def check(
            held: list[Hold], plain: list[tuple[int, bool]], reapers: int, data: st.DataObject
        ) -> None:
            def shuffle(xs: Sequence[int]) -> Sequence[int]:  # the order the tasks start in
                return data.draw(st.permutations(xs))

            runner.run(race_example(race, held, plain, reapers, shuffle))

        try:
            check()
        finally:
            runner.run(race.close())
