"""Stateful test: the Redis store against a plain Python model of positions and reservations."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar, cast

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from stocksync.config import Settings
from stocksync.domain.errors import InsufficientStock, InvalidTransition
from stocksync.domain.model import (
    ACTIVE,
    DEFAULT_DOMAIN,
    Action,
    Line,
    Location,
    State,
    normalize_lines,
    transition_outcome,
)
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.reservations import TransitionResult

SKU = "SKU-1"
LOCATIONS = ("store-a", "store-b")
HUGE_TTL = 30 * 24 * 3600  # nothing expires during a run
T = TypeVar("T")

lines_strategy = st.lists(
    st.builds(Line, st.just(SKU), st.sampled_from(LOCATIONS), st.integers(1, 4)),
    min_size=1,
    max_size=3,
)


class StoreMachine(RuleBasedStateMachine):
    """Each example gets its own event loop, client and namespace on the shared server.

    Subclasses run the same model elsewhere (a cluster: tests/cluster) by overriding
    :meth:`open_store` and :meth:`close_store`, and may put the locations in another ``domain``.
    """

    url: ClassVar[str] = ""
    domain: str = DEFAULT_DOMAIN  # where the locations are (a subclass may choose per example)
    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.batch_sizes: list[int] = []
        self.store = self.run(self.open_store("sm" + uuid.uuid4().hex[:12]))
        self.on_hand = dict.fromkeys(LOCATIONS, 0)
        self.reserved = dict.fromkeys(LOCATIONS, 0)
        self.safety = dict.fromkeys(LOCATIONS, 0)
        self.states: dict[str, State] = {}
        self.lines: dict[str, list[Line]] = {}
        self.events = 0
        self.last_adjust: tuple[str, int, str] | None = None
        for loc in LOCATIONS:
            self.run(self.store.upsert_location(Location(loc, loc, "store", domain=self.domain)))

    async def open_store(self, namespace: str) -> RedisStockStore:
        client = Redis.from_url(self.url, decode_responses=True)
        await client.ping()
        return RedisStockStore(
            client, Settings(namespace=namespace), observe_batch=self.batch_sizes.append
        )

    async def close_store(self) -> None:
        await self.store.client.aclose()

    async def active_ids(self) -> list[str]:
        active = self.store.keys_of(self.domain).active
        return cast("list[str]", await self.store.client.zrange(active, 0, -1))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.close_store())
        self.loop.close()

    def available(self, loc: str) -> int:
        return self.on_hand[loc] - self.reserved[loc] - self.safety[loc]

    def event_id(self) -> str:
        self.events += 1
        return f"e{self.events}"

    # -- rules ---------------------------------------------------------------------------------

    @rule(target=reservations, lines=lines_strategy)
    def reserve(self, lines: list[Line]) -> Any:
        rid = f"r{len(self.states)}"
        fits = all(ln.qty <= self.available(ln.location_id) for ln in normalize_lines(lines))
        try:
            result = self.run(self.store.reserve(rid, "web", lines, ttl_seconds=HUGE_TTL))
        except InsufficientStock:
            assert not fits
            return multiple()
        assert fits
        assert result.created
        assert result.reservation.state is State.HELD
        self.states[rid] = State.HELD
        self.lines[rid] = normalize_lines(lines)
        for ln in self.lines[rid]:
            self.reserved[ln.location_id] += ln.qty
        return rid

    @rule(
        target=reservations,
        burst=st.lists(lines_strategy, min_size=2, max_size=5),
        adjust_first=st.none() | st.tuples(st.sampled_from(LOCATIONS), st.integers(-3, 6)),
    )
    def reserve_together(
        self, burst: list[list[Line]], adjust_first: tuple[str, int] | None
    ) -> Any:
        """Reservations (after a delta) submitted at once ride one batch and apply in order."""
        burst_id = self.event_id()
        ids = [f"b{burst_id}-{k}" for k in range(len(burst))]
        calls: list[Coroutine[Any, Any, Any]] = []
        if adjust_first is not None:
            loc, delta = adjust_first
            calls.append(
                self.store.adjust(
                    SKU, loc, delta, reason="r", source="pos", source_event_id=self.event_id()
                )
            )
        calls += [
            self.store.reserve(rid, "web", lines, ttl_seconds=HUGE_TTL)
            for rid, lines in zip(ids, burst, strict=True)
        ]
        sent = len(self.batch_sizes)
        outcomes = self.run(_gather(calls))
        # One batch held them all; one more claimed their ids in the namespace's directory.
        assert sorted(self.batch_sizes[sent:]) == sorted([len(calls), len(burst)])
        if adjust_first is not None:
            self.on_hand[adjust_first[0]] += adjust_first[1]
            outcomes = outcomes[1:]
        won = []
        for rid, lines, outcome in zip(ids, burst, outcomes, strict=True):
            normalized = normalize_lines(lines)
            fits = all(ln.qty <= self.available(ln.location_id) for ln in normalized)
            if not fits:
                assert isinstance(outcome, InsufficientStock), outcome
                continue
            assert not isinstance(outcome, BaseException), outcome
            self.states[rid] = State.HELD
            self.lines[rid] = normalized
            for ln in normalized:
                self.reserved[ln.location_id] += ln.qty
            won.append(rid)
        return multiple(*won)

    @rule(rid=reservations)
    def reserve_again(self, rid: str) -> None:
        """Retrying a reservation id with its body replays it, whatever its state now."""
        lines = self.lines[rid]
        result = self.run(self.store.reserve(rid, "web", lines, ttl_seconds=HUGE_TTL))
        assert not result.created
        assert result.reservation.state is self.states[rid]
        assert result.reservation.lines == lines

    @rule(
        rid=reservations, action=st.sampled_from(Action), pickup=st.sampled_from([None, HUGE_TTL])
    )
    def transition(self, rid: str, action: Action, pickup: int | None) -> None:
        state = self.states[rid]
        outcome = transition_outcome(state, action)
        store = self.store
        calls: dict[Action, Callable[[], Coroutine[Any, Any, TransitionResult]]] = {
            Action.CONFIRM: lambda: store.confirm(rid, pickup_seconds=pickup),
            Action.READY: lambda: store.ready(rid),
            Action.FULFILL: lambda: store.fulfill(rid),
            Action.RELEASE: lambda: store.release(rid),
            Action.EXTEND: lambda: store.extend(rid, ttl_seconds=HUGE_TTL),
        }
        try:
            result = self.run(calls[action]())
        except InvalidTransition:
            assert outcome is None
            return
        assert outcome is not None
        assert result.reservation.state is outcome
        if state in ACTIVE and outcome in (State.FULFILLED, State.RELEASED):
            for ln in self.lines[rid]:
                self.reserved[ln.location_id] -= ln.qty
                if outcome is State.FULFILLED:
                    self.on_hand[ln.location_id] -= ln.qty
        self.states[rid] = outcome

    @rule(loc=st.sampled_from(LOCATIONS), delta=st.integers(-6, 6))
    def adjust(self, loc: str, delta: int) -> None:
        event_id = self.event_id()
        result = self.run(
            self.store.adjust(SKU, loc, delta, reason="r", source="pos", source_event_id=event_id)
        )
        assert result.applied
        assert not result.replayed
        self.on_hand[loc] += delta
        self.last_adjust = (loc, delta, event_id)

    @rule()
    def retry_last_adjust(self) -> None:
        if self.last_adjust is None:
            return
        loc, delta, event_id = self.last_adjust
        result = self.run(
            self.store.adjust(SKU, loc, delta, reason="r", source="pos", source_event_id=event_id)
        )
        assert result.replayed

    @rule(
        loc=st.sampled_from(LOCATIONS),
        count=st.integers(0, 20),
        safety=st.none() | st.integers(0, 3),
        use_cas=st.booleans(),
    )
    def count(self, loc: str, count: int, safety: int | None, use_cas: bool) -> None:
        expected = self.on_hand[loc] if use_cas else None
        result = self.run(
            self.store.set_count(SKU, loc, count, expected_on_hand=expected, safety_stock=safety)
        )
        assert result.applied
        self.on_hand[loc] = count
        if safety is not None:
            self.safety[loc] = safety

    @rule(loc=st.sampled_from(LOCATIONS), count=st.integers(0, 20), sold=st.integers(1, 3))
    def count_then_sale(self, loc: str, count: int, sold: int) -> None:
        """A till sale reported right after a count (often in the same millisecond)."""
        self.run(self.store.set_count(SKU, loc, count))
        self.on_hand[loc] = count
        self.adjust(loc, -sold)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def redis_matches_model(self) -> None:
        positions = {p.location_id: p for p, _ in self.run(self.store.positions(SKU, LOCATIONS))}
        stored = {rid: self.run(self.store.get_reservation(rid)) for rid in self.states}
        for loc in LOCATIONS:
            p = positions[loc]
            assert p.on_hand == p.available_raw + p.reserved + p.safety_stock
            active_qty = sum(
                ln.qty
                for r in stored.values()
                if r.state in ACTIVE
                for ln in r.lines
                if ln.location_id == loc
            )
            assert p.reserved == active_qty
            assert (p.on_hand, p.reserved, p.safety_stock) == (
                self.on_hand[loc],
                self.reserved[loc],
                self.safety[loc],
            )
        assert {rid: r.state for rid, r in stored.items()} == self.states
        active = set(self.run(self.active_ids()))
        assert active == {rid for rid, s in self.states.items() if s in ACTIVE}


async def _gather(calls: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    return await asyncio.gather(*calls, return_exceptions=True)


def test_store_state_machine_matches_model(redis_url: str) -> None:
    StoreMachine.url = redis_url
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(max_examples=60, stateful_step_count=30, deadline=None),
    )
