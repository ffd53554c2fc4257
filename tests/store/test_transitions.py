"""The reservation state machine in Lua, checked pair by pair against domain.model.TRANSITIONS."""

from __future__ import annotations

import itertools
import math

import pytest

from stocksync.domain.errors import InvalidTransition, NotFound
from stocksync.domain.model import ACTIVE, TRANSITIONS, Action, Line, Position, State
from stocksync.domain.model import transition_outcome as oracle
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.reservations import TransitionResult
from tests.support.store import Stocked, outbox, server_ms, wait_for_state

QTY = 2
ON_HAND = 10
PAIRS = list(itertools.product(State, Action))


async def into_state(store: RedisStockStore, sku: str, rid: str, state: State) -> None:
    """Bring a fresh reservation of QTY units into ``state`` through the store's own API."""
    ttl = 1 if state is State.EXPIRED else 600
    await store.reserve(rid, "web", [Line(sku, "store-a", QTY)], ttl_seconds=ttl)
    if state in (State.CONFIRMED, State.READY):
        await store.confirm(rid, pickup_seconds=3600)
    if state is State.READY:
        await store.ready(rid)
    if state is State.FULFILLED:
        await store.fulfill(rid)
    if state is State.RELEASED:
        await store.release(rid)
    if state is State.EXPIRED:
        await wait_for_state(store, rid, State.EXPIRED)  # a bounded poll on Redis time
    assert (await store.get_reservation(rid)).state is state


async def apply(store: RedisStockStore, rid: str, action: Action) -> TransitionResult:
    if action is Action.CONFIRM:
        return await store.confirm(rid)
    if action is Action.READY:
        return await store.ready(rid)
    if action is Action.FULFILL:
        return await store.fulfill(rid)
    if action is Action.RELEASE:
        return await store.release(rid)
    return await store.extend(rid, ttl_seconds=7200)


def units_after(state: State, outcome: State | None) -> tuple[int, int]:
    """(on_hand, reserved) a reservation of QTY units in ``state`` leaves, then ``outcome``."""
    final = state if outcome is None else outcome
    sold = QTY if final is State.FULFILLED else 0
    reserved = QTY if final in ACTIVE else 0
    return ON_HAND - sold, reserved


async def units(store: RedisStockStore, sku: str) -> tuple[int, int]:
    position = await store.position(sku, "store-a")
    assert position.safety_stock == 0
    return position.on_hand, position.reserved


@pytest.mark.parametrize(("state", "action"), PAIRS, ids=[f"{s}-{a}" for s, a in PAIRS])
async def test_transition_pair_matches_domain_table(
    store: RedisStockStore, stocked: Stocked, sku: str, state: State, action: Action
) -> None:
    await stocked(sku, ON_HAND)
    await into_state(store, sku, "r1", state)
    before = await store.get_reservation("r1")
    assert await units(store, sku) == units_after(state, None)
    events_before = await outbox(store, sku)
    outcome = oracle(state, action)

    if outcome is None:
        with pytest.raises(InvalidTransition) as err:
            await apply(store, "r1", action)
        assert err.value.extra == {"state": str(state), "action": str(action)}
        assert await store.get_reservation("r1") == before
        assert await outbox(store, sku) == events_before
    else:
        result = await apply(store, "r1", action)
        assert result.reservation.state is outcome
        assert result.repeated is (TRANSITIONS[action][1] is state)
        assert await store.get_reservation("r1") == result.reservation
        if result.repeated:
            assert result.reservation == before
            assert await outbox(store, sku) == events_before
        else:
            assert (await outbox(store, sku))[-1]["kind"] == _event_kind(action, outcome)
        if action is Action.EXTEND:
            assert result.reservation.expires_at_ms is not None
            assert result.reservation.expires_at_ms >= await server_ms(store) + 7_100_000
    assert await units(store, sku) == units_after(state, outcome)


def _event_kind(action: Action, outcome: State) -> str:
    return "extended" if action is Action.EXTEND else str(outcome)


async def test_transition_expiry_gives_units_back(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, ON_HAND)
    await store.reserve("r1", "web", [Line(sku, "store-a", QTY)], ttl_seconds=1)
    assert (await store.position(sku, "store-a")).reserved == QTY
    expired = await wait_for_state(store, "r1", State.EXPIRED)
    assert expired.expires_at_ms is None
    assert await store.position(sku, "store-a") == Position(sku, "store-a", ON_HAND, 0, 0)
    assert (await outbox(store, sku))[-1]["kind"] == "expired"


async def test_transition_fulfill_drops_every_line(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, 5, "store-a")
    await stocked(sku, 3, "store-b")
    lines = [Line(sku, "store-a", 2), Line(sku, "store-b", 3)]
    await store.reserve("r1", "pos", lines, ttl_seconds=600)
    result = await store.fulfill("r1")
    assert result.reservation.state is State.FULFILLED
    assert await store.position(sku, "store-a") == Position(sku, "store-a", 3, 0, 0)
    assert await store.position(sku, "store-b") == Position(sku, "store-b", 0, 0, 0)
    assert await store.client.zscore(store.keys.active, "r1") is None


async def test_confirm_with_pickup_seconds_sets_deadline(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, ON_HAND)
    await store.reserve("r1", "app", [Line(sku, "store-a", 1)], ttl_seconds=600)
    start = await server_ms(store)
    result = await store.confirm("r1", pickup_seconds=3600)
    end = await server_ms(store)
    deadline = result.reservation.expires_at_ms
    assert deadline is not None
    assert start + 3_600_000 <= deadline <= end + 3_600_000
    assert await store.client.zscore(store.keys.holds(sku, "store-a"), "r1") == deadline
    assert await store.client.zscore(store.keys.active, "r1") == deadline
    ready = await store.ready("r1")
    assert ready.reservation.expires_at_ms == deadline  # ready keeps the pickup deadline


async def test_confirm_without_pickup_seconds_removes_deadline(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, ON_HAND)
    held = await store.reserve("r1", "web", [Line(sku, "store-a", 1)], ttl_seconds=600)
    assert held.reservation.expires_at_ms is not None
    result = await store.confirm("r1")
    assert result.reservation.state is State.CONFIRMED
    assert result.reservation.expires_at_ms is None
    assert await store.client.zscore(store.keys.holds(sku, "store-a"), "r1") == math.inf
    assert await store.client.zscore(store.keys.active, "r1") == math.inf
    assert (await store.reap()).expired == 0
    assert (await store.get_reservation("r1")).state is State.CONFIRMED


async def test_transition_repeated_returns_same_result(
    store: RedisStockStore, stocked: Stocked, sku: str
) -> None:
    await stocked(sku, ON_HAND)
    await store.reserve("r1", "web", [Line(sku, "store-a", QTY)], ttl_seconds=600)
    first = await store.confirm("r1", pickup_seconds=60)
    again = await store.confirm("r1", pickup_seconds=60)
    assert (first.repeated, again.repeated) == (False, True)
    assert again.reservation == first.reservation
    assert (await store.ready("r1")).repeated is False
    assert (await store.ready("r1")).repeated is True
    done = await store.fulfill("r1")
    replay = await store.fulfill("r1")
    assert (done.repeated, replay.repeated) == (False, True)
    assert replay.reservation == done.reservation
    assert await store.position(sku, "store-a") == Position(sku, "store-a", ON_HAND - QTY, 0, 0)
    assert [e["kind"] for e in await outbox(store, sku)].count("fulfilled") == 1


@pytest.mark.parametrize("action", list(Action))
async def test_transition_unknown_reservation_raises_not_found(
    store: RedisStockStore, action: Action
) -> None:
    with pytest.raises(NotFound):
        await apply(store, "no-such-reservation", action)
    with pytest.raises(NotFound):
        await store.get_reservation("no-such-reservation")
    assert not await store.client.exists(store.keys.reservation("no-such-reservation"))
