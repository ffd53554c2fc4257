"""EngineGateway and Pipeline against the real engine: each command applies once, whatever
is delivered again, and what cannot be applied is dead-lettered with its reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

from connectors.framework.commands import Adjust, CancelOrder, PlaceOrder, Sale, SetCount
from connectors.framework.gateway import Applied, EngineGateway
from connectors.framework.pipeline import DeadLettered, Pipeline
from connectors.framework.retry import Backoff
from connectors.framework.state import ConnectorState
from stocksync.domain.errors import InsufficientStock, StockRegressed
from stocksync.domain.model import Line, State
from stocksync.ledger.tables import Movement
from stocksync.plugins import EngineContext
from stocksync.store.recovery import RecoveryOps
from tests.support.store import server_ms

Stocked = Callable[..., Any]
NO_WAIT = Backoff(attempts=2, base_seconds=0.001, cap_seconds=0.001)


async def units(ctx: EngineContext, sku: str, location_id: str = "store-a") -> tuple[int, int]:
    position = await ctx.store.position(sku, location_id)
    return position.on_hand, position.reserved


async def test_gateway_stock_commands_report_applied_duplicate_and_stale(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 0)
    now = await server_ms(ctx.store)
    gateway = EngineGateway(ctx)
    count = SetCount(sku, "store-a", 10, now, "wms", "c1")
    assert await gateway.apply(count) is Applied.APPLIED
    assert await gateway.apply(count) is Applied.DUPLICATE
    before_count = Adjust(sku, "store-a", -1, "sale", "pos", "s0", occurred_at_ms=now - 1000)
    assert await gateway.apply(before_count) is Applied.STALE  # the count already has it
    receipt = Adjust(sku, "store-a", 5, "receipt", "wms", "r1")
    assert await gateway.apply(receipt) is Applied.APPLIED
    assert await units(ctx, sku) == (15, 0)


async def test_gateway_receipts_naming_a_supply_consume_it_alone_and_in_batches(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 0)
    await ctx.store.set_incoming(sku, "store-a", "po-9", 10, 1_900_000_000_000)
    gateway = EngineGateway(ctx)
    alone = Adjust(sku, "store-a", 3, "receipt", "wms", "r1", supply_id="po-9")
    assert await gateway.apply(alone) is Applied.APPLIED
    batch = [Adjust(sku, "store-a", 2, "receipt", "wms", f"r{i}", supply_id="po-9") for i in (2, 3)]
    assert await gateway.stock_batch(batch) == [Applied.APPLIED, Applied.APPLIED]
    assert await gateway.stock_batch(batch) == [Applied.DUPLICATE, Applied.DUPLICATE]
    position = await ctx.store.position(sku, "store-a")
    assert (position.on_hand, position.incoming) == (7, 3)


async def test_gateway_sale_naming_a_hold_fulfils_it_once(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    await ctx.store.reserve("chat-hold-1", "chat", [Line(sku, "store-a", 1)], ttl_seconds=600)
    gateway = EngineGateway(ctx)
    sale = Sale(sku, "store-a", 1, "square", "sq-1", reservation_id="chat-hold-1")
    assert await gateway.apply(sale) is Applied.APPLIED
    assert await gateway.apply(sale) is Applied.DUPLICATE
    assert await units(ctx, sku) == (0, 0)  # one unit sold, not two
    assert (await ctx.store.get_reservation("chat-hold-1")).state is State.FULFILLED
    with Session(ctx.engine) as session:  # the sale is in the ledger before it is acknowledged
        kinds = session.exec(
            select(Movement.kind).where(Movement.reservation_id == "chat-hold-1")
        ).all()
    assert list(kinds) == ["fulfilled"]


async def test_gateway_sale_beyond_the_hold_decrements_the_rest(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5)
    await ctx.store.reserve("hold-2", "web", [Line(sku, "store-a", 1)], ttl_seconds=600)
    gateway = EngineGateway(ctx)
    sale = Sale(sku, "store-a", 3, "square", "sq-2", reservation_id="hold-2")
    await gateway.apply(sale)
    await gateway.apply(sale)
    assert await units(ctx, sku) == (2, 0)


async def test_gateway_sale_naming_a_released_hold_is_a_plain_sale(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    await ctx.store.reserve("hold-3", "web", [Line(sku, "store-a", 1)], ttl_seconds=600)
    await ctx.store.release("hold-3")
    sale = Sale(sku, "store-a", 1, "square", "sq-3", reservation_id="hold-3")
    assert await EngineGateway(ctx).apply(sale) is Applied.APPLIED
    assert await units(ctx, sku) == (1, 0)


async def test_gateway_till_sale_of_a_held_last_unit_is_applied_and_flags_the_hold(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 1)
    await ctx.store.reserve("someone-else", "chat", [Line(sku, "store-a", 1)], ttl_seconds=600)
    sale = Sale(sku, "store-a", 1, "square", "sq-4")
    assert await EngineGateway(ctx).apply(sale) is Applied.APPLIED
    position = await ctx.store.position(sku, "store-a")
    assert (position.on_hand, position.reserved, position.available_raw) == (0, 1, -1)
    assert (await ctx.store.get_reservation("someone-else")).at_risk


async def test_gateway_place_order_confirms_an_existing_hold(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    await ctx.store.reserve("checkout-1", "web", [Line(sku, "store-a", 1)], ttl_seconds=600)
    order = PlaceOrder("checkout-1", "web", (Line(sku, "store-a", 1),))
    gateway = EngineGateway(ctx)
    assert await gateway.apply(order) is Applied.APPLIED
    assert await gateway.apply(order) is Applied.DUPLICATE
    assert (await ctx.store.get_reservation("checkout-1")).state is State.CONFIRMED
    assert await units(ctx, sku) == (2, 1)


async def test_gateway_place_order_without_a_hold_reserves_and_confirms(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    order = PlaceOrder("order-9", "web", (Line(sku, "store-a", 2),))
    gateway = EngineGateway(ctx)
    assert await gateway.apply(order) is Applied.APPLIED
    assert await gateway.apply(order) is Applied.DUPLICATE
    assert (await ctx.store.get_reservation("order-9")).state is State.CONFIRMED
    assert await units(ctx, sku) == (2, 2)
    with pytest.raises(InsufficientStock):
        await gateway.apply(PlaceOrder("order-10", "web", (Line(sku, "store-a", 1),)))


async def test_gateway_cancel_order_releases_once_and_tolerates_no_hold(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 2)
    gateway = EngineGateway(ctx)
    await gateway.apply(PlaceOrder("order-11", "web", (Line(sku, "store-a", 1),)))
    assert await gateway.apply(CancelOrder("order-11")) is Applied.APPLIED
    assert await gateway.apply(CancelOrder("order-11")) is Applied.DUPLICATE
    assert await gateway.apply(CancelOrder("never-placed")) is Applied.DUPLICATE
    assert await units(ctx, sku) == (2, 0)


async def test_pipeline_dead_letters_what_the_engine_refuses_and_counts_it(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    pipeline = Pipeline("test-pos", ctx, NO_WAIT)
    raw = '{"change": "to a location we do not know"}'
    commands = [
        Adjust(sku, "store-a", -1, "sale", "pos", "p1"),
        Adjust(sku, "nowhere", -1, "sale", "pos", "p2"),
    ]
    with pytest.raises(DeadLettered) as caught:
        await pipeline.apply("sale", raw, commands)
    assert "not_found" in caught.value.reason
    letters = ConnectorState(ctx.engine, "test-pos").dead_letters()
    assert [(d.id, d.kind, d.payload) for d in letters] == [(caught.value.letter_id, "sale", raw)]
    assert await units(ctx, sku) == (2, 0)  # the first command stays applied (idempotent)
    sample = ctx.registry.get_sample_value
    labels = {"connector": "test-pos"}
    assert sample("stocksync_connector_events_total", {**labels, "outcome": "applied"}) == 1
    assert sample("stocksync_connector_events_total", {**labels, "outcome": "dead_letter"}) == 1
    assert sample("stocksync_connector_last_success_timestamp_seconds", labels)


async def test_pipeline_checkpoint_round_trips(ctx: EngineContext) -> None:
    pipeline = Pipeline("test-poller", ctx, NO_WAIT)
    assert await pipeline.checkpoint() is None
    await pipeline.save_checkpoint("cursor-1")
    await pipeline.save_checkpoint("cursor-2")
    assert await Pipeline("test-poller", ctx).checkpoint() == "cursor-2"
    assert await Pipeline("another", ctx).checkpoint() is None


async def test_pipeline_retries_a_frozen_sku_then_gives_up_without_a_dead_letter(
    ctx: EngineContext, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 3)
    frozen = await RecoveryOps(ctx.store).freeze_regressed({sku: 10_000})
    assert frozen == [sku]
    pipeline = Pipeline(
        "test-frozen", ctx, Backoff(attempts=3, base_seconds=0.001, cap_seconds=0.001)
    )
    with pytest.raises(StockRegressed):
        await pipeline.apply("sale", "{}", [Adjust(sku, "store-a", -1, "sale", "pos", "f1")])
    sample = ctx.registry.get_sample_value
    labels = {"connector": "test-frozen"}
    assert sample("stocksync_connector_events_total", {**labels, "outcome": "retried"}) == 2
    assert sample("stocksync_connector_events_total", {**labels, "outcome": "failed"}) == 1
    assert ConnectorState(ctx.engine, "test-frozen").dead_letters() == []  # retried later, kept
