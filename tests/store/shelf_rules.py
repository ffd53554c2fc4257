"""The first half of the shelf state machine (tests/store/test_shelf_state_machine.py):
:class:`StoreMachine` with the plain model of tests/support/shelf_model.py beside it, the
helpers that check a refusal or a replay changed nothing, StoreMachine's own rules booking the
units they add or sell, and the rules for stock, till sales, moves and returns.

Rules draw their arguments inside (``data``) where they have several: Hypothesis picks rules
with fewer arguments more often, and these are the ones under test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from stocksync.domain.errors import IdempotencyConflict
from stocksync.domain.model import (
    ACTIVE,
    MOVABLE_BUCKETS,
    WRITTEN_OFF,
    Action,
    Disposition,
    Line,
    State,
)
from stocksync.domain.returns import MoveResult, ReturnLine, normalize_return_lines
from tests.store.test_state_machine import HUGE_TTL, LOCATIONS, SKU, StoreMachine, lines_strategy
from tests.support.keyspace import Snapshot, snapshot
from tests.support.shelf_model import BUCKETS, Refusal, ShelfModel

SKU_2 = "SKU-2"  # never reserved: shipped, returned unlinked, and refused in linked returns
SKUS = (SKU, SKU_2)
POSITIONS = [(sku, loc) for sku in SKUS for loc in LOCATIONS]
SUPPLIES = ("po-1", "po-2")
MOVABLE = sorted(b.value for b in MOVABLE_BUCKETS)
MOVES = [
    (source, target) for source in MOVABLE for target in (*MOVABLE, WRITTEN_OFF) if source != target
]
T = TypeVar("T")
Call = Callable[[], Coroutine[Any, Any, T]]
Move = tuple[str, str, int, str, str, str]  # sku, location, qty, from, to, source_event_id

return_lines = st.lists(
    st.builds(
        ReturnLine,
        st.just(SKU),
        st.sampled_from(LOCATIONS),
        st.integers(1, 3),
        st.sampled_from(Disposition),
    ),
    min_size=1,
    max_size=2,
    unique_by=lambda rl: rl.location_id,
)
till_return_lines = st.lists(
    st.builds(
        ReturnLine,
        st.sampled_from(SKUS),
        st.sampled_from(LOCATIONS),
        st.integers(1, 3),
        st.sampled_from(Disposition),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda rl: (rl.sku, rl.location_id),
)


class ShelfRules(StoreMachine):
    """:class:`StoreMachine` and the shelf model, sharing its on_hand, reserved, safety,
    states and lines (SKU-1's); SKU-2 is the model's alone."""

    outcomes: ClassVar[Counter[str]] = Counter()  # what the run exercised, over all examples

    def __init__(self) -> None:
        super().__init__()
        self.model = ShelfModel(
            on_hand={SKU: self.on_hand, SKU_2: dict.fromkeys(LOCATIONS, 0)},
            reserved={SKU: self.reserved, SKU_2: dict.fromkeys(LOCATIONS, 0)},
            safety={SKU: self.safety, SKU_2: dict.fromkeys(LOCATIONS, 0)},
            states=self.states,
            lines=self.lines,
        )
        self.started = False  # set once the start state is made (test_shelf_state_machine.py)
        # The last move made, and the position's buckets right after it (what a replay says).
        self.last_move: tuple[Move, tuple[int, ...]] | None = None

    def teardown(self) -> None:
        """Drop the example's keys: every snapshot scans the server, so the keys of earlier
        examples (hundreds while Hypothesis shrinks a failure) would slow every later one."""
        self.run(self.drop_keys())
        super().teardown()

    async def drop_keys(self) -> None:
        client, namespace = self.store.client, self.store.settings.namespace
        for pattern in (f"ss:{{{namespace}:*", f"ss:{{{namespace}}}:*"):
            keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
            if keys:
                await client.delete(*keys)

    # -- helpers ---------------------------------------------------------------------------

    def keyspace(self) -> Snapshot:
        return self.run(snapshot(self.store.client, self.store.settings.namespace))

    def refused(self, call: Call[Any], refusal: Refusal, what: str) -> None:
        """The call must raise the predicted error with the predicted fields, and change no
        key of the namespace."""
        before = self.keyspace()
        with pytest.raises(refusal.error) as caught:
            self.run(call())
        assert type(caught.value) is refusal.error, caught.value
        assert caught.value.extra == refusal.extra, caught.value.detail
        assert self.keyspace() == before, f"a refused {what} changed Redis"
        self.note(f"{what}: refused ({refusal.error.code})")

    def unchanged(self, call: Call[T], what: str) -> T:
        """A replay: answered, and no key of the namespace changed."""
        before = self.keyspace()
        result = self.run(call())
        assert self.keyspace() == before, f"a replayed {what} changed Redis"
        self.note(f"{what}: replayed")
        return result

    def note(self, outcome: str) -> None:
        """Count an outcome ('<operation>: <what happened>') for the run's coverage check;
        the start state's operations are not counted."""
        if self.started:
            self.outcomes[outcome] += 1

    def buckets_of(self, sku: str, loc: str) -> tuple[int, ...]:
        return tuple(self.model.buckets[b][sku][loc] for b in BUCKETS)

    # -- StoreMachine's rules that change on_hand, booking their units as conserved --------

    @rule(loc=st.sampled_from(LOCATIONS), delta=st.integers(-6, 6))
    def adjust(self, loc: str, delta: int) -> None:
        super().adjust(loc, delta)
        self.model.conserved[SKU] += delta

    @rule(
        loc=st.sampled_from(LOCATIONS),
        count=st.integers(0, 20),
        safety=st.none() | st.integers(0, 3),
        use_cas=st.booleans(),
    )
    def count(self, loc: str, count: int, safety: int | None, use_cas: bool) -> None:
        self.model.conserved[SKU] += count - self.on_hand[loc]
        super().count(loc, count, safety, use_cas)

    @rule(loc=st.sampled_from(LOCATIONS), count=st.integers(0, 20), sold=st.integers(1, 3))
    def count_then_sale(self, loc: str, count: int, sold: int) -> None:
        self.model.conserved[SKU] += count - self.on_hand[loc]  # the sale: by self.adjust
        super().count_then_sale(loc, count, sold)

    @rule(
        rid=StoreMachine.reservations,
        action=st.sampled_from(Action),
        pickup=st.sampled_from([None, HUGE_TTL]),
    )
    def transition(self, rid: str, action: Action, pickup: int | None) -> None:
        before = self.states[rid]
        super().transition(rid, action, pickup)
        if before in ACTIVE and self.states[rid] is State.FULFILLED:
            self.model.conserved[SKU] -= sum(ln.qty for ln in self.lines[rid])

    @rule(
        target=StoreMachine.reservations,
        burst=st.lists(lines_strategy, min_size=2, max_size=5),
        adjust_first=st.none() | st.tuples(st.sampled_from(LOCATIONS), st.integers(-3, 6)),
    )
    def reserve_together(
        self, burst: list[list[Line]], adjust_first: tuple[str, int] | None
    ) -> Any:
        if adjust_first is not None:
            self.model.conserved[SKU] += adjust_first[1]
        return super().reserve_together(burst, adjust_first)

    # -- stock and sales -------------------------------------------------------------------

    @rule(loc=st.sampled_from(LOCATIONS), count=st.integers(0, 20))
    def count_other_sku(self, loc: str, count: int) -> None:
        assert self.run(self.store.set_count(SKU_2, loc, count)).applied
        self.model.apply_count(SKU_2, loc, count)

    @rule(data=st.data())
    def delivery(self, data: st.DataObject) -> None:
        """A receipt (a positive delta), naming the incoming supply it delivers or not."""
        sku, loc = data.draw(st.sampled_from(POSITIONS))
        delta = data.draw(st.integers(1, 6))
        supply_id = data.draw(st.none() | st.sampled_from(SUPPLIES))
        event_id = self.event_id()
        result = self.run(
            self.store.adjust(
                sku, loc, delta, reason="delivery", source="wms", source_event_id=event_id,
                supply_id=supply_id,
            )
        )  # fmt: skip
        assert result.applied
        self.model.apply_delta(sku, loc, delta, supply_id)

    @rule(target=StoreMachine.reservations, lines=lines_strategy)
    def reserve_and_fulfil(self, lines: list[Line]) -> Any:
        """A sale collected at once: the reservations that linked returns bring back."""
        rid = self.reserve(lines)
        if not isinstance(rid, str):
            return rid  # did not fit: nothing to fulfil
        self.transition(rid, Action.FULFILL, None)
        return rid

    @rule(data=st.data())
    def till_sale(self, data: st.DataObject) -> None:
        """A till sale naming nothing, an active hold (fulfilled by it, covering its units at
        the sale's position), or any reservation (an ended one covers none). A fulfilled one
        is not named: its sale goes through the as-of rule, which the sale's own tests cover."""
        qty = data.draw(st.integers(1, 4))
        active = sorted(rid for rid, state in self.states.items() if state in ACTIVE)
        named = data.draw(st.sampled_from(("nothing", "an active hold", "any reservation")))
        rid = None
        if named == "an active hold" and active:
            rid = data.draw(st.sampled_from(active))
        elif named == "any reservation" and self.states:
            rid = data.draw(st.sampled_from(sorted(self.states)))
        if rid is None:
            loc = data.draw(st.sampled_from(LOCATIONS))
        else:
            loc = data.draw(st.sampled_from(sorted({ln.location_id for ln in self.lines[rid]})))
        self.sell(None if rid and self.states[rid] is State.FULFILLED else rid, loc, qty)

    def sell(self, rid: str | None, loc: str, qty: int) -> None:
        covered = self.model.sale_covers(rid, SKU, loc)
        event_id = self.event_id()
        result = self.run(
            self.store.sell(
                SKU, loc, qty, source="till", source_event_id=event_id, reservation_id=rid
            )
        )
        assert (result.fulfilled, result.covered) == (covered > 0, covered)
        if covered and rid is not None:
            self.model.apply_fulfil(rid)
        if qty > covered:
            self.model.apply_delta(SKU, loc, covered - qty)
        self.note("sale: of a hold" if covered else "sale: plain")

    # -- moves between buckets -------------------------------------------------------------

    @rule(data=st.data())
    def move(self, data: st.DataObject) -> None:
        """A move between two buckets of a position (half of the time out of one that has
        units), or a write-off; or, a third of the time, the last move again: the same body is
        a replay answering the position as it was right after it, another body a conflict."""
        if self.last_move is not None and data.draw(st.integers(0, 2)) == 0:
            self.move_again(changed=data.draw(st.booleans()))
            return
        stocked = [
            (sku, loc, b)
            for sku, loc in POSITIONS
            for b in MOVABLE
            if self.model.buckets[b][sku][loc] > 0
        ]
        if len(stocked) > 0 and data.draw(st.booleans()):  # out of a bucket that has units
            sku, loc, source = data.draw(st.sampled_from(stocked))
            target = data.draw(st.sampled_from([t for s, t in MOVES if s == source]))
        else:
            sku, loc = data.draw(st.sampled_from(POSITIONS))
            source, target = data.draw(st.sampled_from(MOVES))
        self.move_units((sku, loc, data.draw(st.integers(1, 3)), source, target, self.event_id()))

    def move_units(self, move: Move) -> None:
        sku, loc, qty, source, target, _ = move
        refusal = self.model.move_refusal(sku, loc, qty, source)
        if refusal is not None:
            self.refused(self.move_call(move), refusal, "move")
            return
        result = self.run(self.move_call(move)())
        self.model.apply_move(sku, loc, qty, source, target)
        p = result.position
        after = (p.on_hand, p.damaged, p.quality_control, p.in_transit)
        assert (result.applied, result.replayed) == (True, False)
        assert after == self.buckets_of(sku, loc)
        if p.on_hand >= p.reserved:
            assert result.at_risk_reservations == 0
        self.last_move = (move, after)
        self.note(f"move: from {source} to {target}")

    def move_again(self, *, changed: bool) -> None:
        assert self.last_move is not None
        (sku, loc, qty, source, target, event_id), after = self.last_move
        if changed:
            moved_more = (sku, loc, qty + 1, source, target, event_id)
            self.refused(self.move_call(moved_more), Refusal(IdempotencyConflict), "move")
            return
        result = self.unchanged(self.move_call(self.last_move[0]), "move")
        p = result.position
        assert result.replayed
        assert (p.on_hand, p.damaged, p.quality_control, p.in_transit) == after

    def move_call(self, move: Move) -> Call[MoveResult]:
        sku, loc, qty, source, target, event_id = move
        return lambda: self.store.move_units(
            sku, loc, qty, from_bucket=source, to_bucket=target, reason="inspection",
            source="desk", source_event_id=event_id,
        )  # fmt: skip

    # -- returns ---------------------------------------------------------------------------

    def fulfilled(self) -> list[str]:
        return sorted(rid for rid, state in self.states.items() if state is State.FULFILLED)

    @precondition(lambda self: bool(self.fulfilled()))
    @rule(data=st.data())
    def return_sold_units(self, data: st.DataObject) -> None:
        """Units of a fulfilled reservation back: some, or exactly what is left to return
        (accepted), or one more (refused); the bound counts every earlier return."""
        lines = data.draw(return_lines)
        amount = data.draw(st.sampled_from(("some", "the rest", "one more than the rest")))
        rid = data.draw(st.sampled_from(self.fulfilled()))
        if amount != "some":
            sold = sum(ln.qty for ln in self.lines[rid])
            rest = sold - self.model.returned[rid][SKU] + (amount != "the rest")
            if rest == 0:
                return  # every unit came back already
            lines = [ReturnLine(SKU, lines[0].location_id, rest, lines[0].disposition)]
        self.record_return(rid, lines)

    @precondition(lambda self: bool(self.states))
    @rule(data=st.data())
    def return_units_of(self, data: st.DataObject) -> None:
        """A return naming a reservation in any state (refused unless fulfilled), one bringing
        back a SKU the reservation never had, or one naming no reservation there is."""
        rid = data.draw(st.sampled_from(sorted(self.states)))
        lines = data.draw(return_lines)
        variant = data.draw(st.sampled_from(("any", "a SKU never sold", "an unknown one")))
        if variant == "a SKU never sold":
            lines = [ReturnLine(SKU_2, rl.location_id, rl.qty, rl.disposition) for rl in lines]
        self.record_return("never-made" if variant == "an unknown one" else rid, lines)

    @rule(lines=till_return_lines)
    def till_return(self, lines: list[ReturnLine]) -> None:
        """An unlinked return: nothing bounds it."""
        self.record_return(None, lines)

    def record_return(self, rid: str | None, lines: list[ReturnLine]) -> None:
        return_id = "ret-" + self.event_id()

        def call() -> Coroutine[Any, Any, Any]:
            return self.store.record_return(return_id, lines, reservation_id=rid)

        refusal = self.model.return_refusal(rid, lines)
        if refusal is not None:
            self.refused(call, refusal, "return")
            return
        result = self.run(call())
        assert (result.return_id, result.reservation_id) == (return_id, rid)
        assert (result.lines, result.replayed) == (normalize_return_lines(lines), False)
        self.model.apply_return(return_id, rid, lines)
        self.note("return: linked" if rid else "return: unlinked")

    @precondition(lambda self: bool(self.model.returns))
    @rule(data=st.data())
    def return_again(self, data: st.DataObject) -> None:
        """A return's id again, its lines in another order: with its body a replay, with one
        more unit a conflict."""
        return_id = data.draw(st.sampled_from(sorted(self.model.returns)))
        rid, lines = self.model.returns[return_id]
        if data.draw(st.booleans()):
            first = lines[0]
            more = [ReturnLine(first.sku, first.location_id, first.qty + 1, first.disposition)]
            self.refused(
                lambda: self.store.record_return(return_id, more, reservation_id=rid),
                Refusal(IdempotencyConflict),
                "return",
            )
            return

        def again() -> Coroutine[Any, Any, Any]:
            return self.store.record_return(return_id, lines[::-1], reservation_id=rid)

        result = self.unchanged(again, "return")
        assert (result.replayed, result.lines, result.reservation_id) == (True, lines, rid)
