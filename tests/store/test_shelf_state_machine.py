"""Stateful test of the stock beyond the shelf: the store's model of positions and reservations
(tests/store/test_state_machine.py) extended with till sales, moves between buckets, linked and
unlinked returns, transfers and incoming supply (rules here and in tests/store/shelf_rules.py),
against the plain model in tests/support/shelf_model.py, which predicts every answer
(accepted, or refused with which error and fields) and every bucket.

After every step, against Redis:
(a) every position's buckets and arrivals equal the model's, and so do the transfers, the
    transfer lists and the reservations' returned units;
(b) units are conserved: Σ on_hand + damaged + quality_control + in_transit of each SKU over
    its positions equals ``conserved``, which only counts, adjustments, sales, returns,
    write-offs and transfer shortfalls change (a move, a shipment, a cancel never do);
(c) ``available`` never counts a unit beyond the shelf: the availability script answers
    max(0, on_hand - reserved - safety) whatever the other buckets hold;
and (d) every refused operation, and every replay, leaves every key of the namespace as it was.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule, run_state_machine_as_test

from stocksync.domain.errors import InsufficientStock
from stocksync.domain.model import ArrivalKind, Disposition, Line, TransferState
from stocksync.domain.returns import ReturnLine
from stocksync.domain.transfers import Transfer, TransferLine
from tests.store.shelf_rules import POSITIONS, SKU_2, SKUS, SUPPLIES, ShelfRules
from tests.store.test_state_machine import HUGE_TTL, LOCATIONS, SKU

EXPECTED_AT_MS = (1_900_000_000_000, 1_900_000_360_000)
# What a receipt says of a shipped line (not named: none of it arrived).
RECEIPT_PARTS = ("all", "all", "some", "not named", "one too many")
transfer_lines = st.dictionaries(st.sampled_from(SKUS), st.integers(1, 5), min_size=1)


class ShelfMachine(ShelfRules):
    """Each example starts with stock everywhere, damaged and uninspected units, a fulfilled
    reservation, an active hold, a shipped transfer, a supply on its way and a move made, so
    that every rule that acts on an earlier operation can act from the first step."""

    @initialize(
        counts=st.lists(st.integers(3, 12), min_size=4, max_size=4),
        beyond=st.lists(st.integers(0, 3), min_size=8, max_size=8),
        sold=st.integers(1, 3),
        shipped=st.integers(1, 3),
    )
    def start(self, counts: list[int], beyond: list[int], sold: int, shipped: int) -> None:
        for (sku, loc), count in zip(POSITIONS, counts, strict=True):
            assert self.run(self.store.set_count(sku, loc, count)).applied
            self.model.apply_count(sku, loc, count)
        quantities = iter(beyond)  # till returns: a return names each position once
        for disposition in (Disposition.INSPECT, Disposition.DAMAGED):
            lines = [ReturnLine(sku, loc, next(quantities), disposition) for sku, loc in POSITIONS]
            if lines := [rl for rl in lines if rl.qty]:
                self.record_return(None, lines)
        a, b = LOCATIONS
        assert isinstance(self.reserve_and_fulfil([Line(SKU, a, sold)]), str)
        assert isinstance(self.reserve([Line(SKU, b, 1)]), str)
        self.ship(True, {SKU_2: shipped}, False, None)
        self.run(self.store.set_incoming(SKU_2, b, SUPPLIES[0], 2, EXPECTED_AT_MS[0]))
        self.model.set_supply(SKU_2, b, SUPPLIES[0], 2, EXPECTED_AT_MS[0])
        self.move_units((SKU_2, b, 1, "on_hand", "damaged", self.event_id()))
        self.started = True

    # -- transfers -------------------------------------------------------------------------

    @rule(
        from_first=st.booleans(),
        lines=transfer_lines,
        force=st.booleans(),
        expected_at_ms=st.none() | st.sampled_from(EXPECTED_AT_MS),
    )
    def ship(
        self, from_first: bool, lines: dict[str, int], force: bool, expected_at_ms: int | None
    ) -> None:
        source, target = LOCATIONS if from_first else LOCATIONS[::-1]
        transfer_id = "x-" + self.event_id()

        def call() -> Coroutine[Any, Any, Transfer]:
            return self.store.ship_transfer(
                transfer_id, source, target, list(lines.items()),
                expected_at_ms=expected_at_ms, force=force,
            )  # fmt: skip

        refusal = self.model.ship_refusal(source, lines, force=force)
        if refusal is not None:
            self.refused(call, refusal, "shipment")
            return
        result = self.run(call())
        self.model.apply_ship(transfer_id, source, target, lines, expected_at_ms, force=force)
        assert (result.state, result.replayed) == (TransferState.SHIPPED, False)
        assert result.lines == [TransferLine(sku, qty, 0) for sku, qty in sorted(lines.items())]
        self.note("shipment: forced" if force else "shipment: within available")

    def pick_transfer(self, data: st.DataObject) -> str:
        """A transfer still in transit half of the time (when there is one), else any."""
        shipped = [x for x, t in self.model.transfers.items() if t.state is TransferState.SHIPPED]
        if len(shipped) > 0 and data.draw(st.booleans()):
            return data.draw(st.sampled_from(sorted(shipped)))
        return data.draw(st.sampled_from(sorted(self.model.transfers)))

    @precondition(lambda self: bool(self.model.transfers))
    @rule(data=st.data())
    def ship_again(self, data: st.DataObject) -> None:
        """A shipment's id again: the same request answers the transfer as it is now (in any
        state); another expected time under the id is a conflict."""
        transfer_id = self.pick_transfer(data)
        t = self.model.transfers[transfer_id]
        expected_at_ms = data.draw(st.sampled_from((t.expected_at_ms, EXPECTED_AT_MS[0] + 1)))

        def call() -> Coroutine[Any, Any, Transfer]:
            return self.store.ship_transfer(
                transfer_id, t.source, t.target, list(t.shipped.items()),
                expected_at_ms=expected_at_ms, force=t.force,
            )  # fmt: skip

        refusal = self.model.ship_replay_refusal(transfer_id, t.shipped, expected_at_ms, t.force)
        if refusal is not None:
            self.refused(call, refusal, "shipment")
            return
        result = self.unchanged(call, "shipment")
        assert (result.replayed, result.state) == (True, t.state)

    @precondition(lambda self: bool(self.model.transfers))
    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        """A receipt: per shipped SKU all of it, some, none (not named) or one more than
        shipped (refused); sometimes a SKU never shipped (refused); naming a supply it
        delivers or not. A received transfer gets its own receipt again half of the time."""
        transfer_id = self.pick_transfer(data)
        t = self.model.transfers[transfer_id]
        if t.state is TransferState.RECEIVED and data.draw(st.booleans()):
            receipt = {sku: n for sku, n in t.received.items() if n or data.draw(st.booleans())}
            supply = t.supply
        else:
            receipt = {}
            for sku, shipped in sorted(t.shipped.items()):
                part = data.draw(st.sampled_from(RECEIPT_PARTS))
                if part == "all":
                    receipt[sku] = shipped
                elif part == "some":
                    receipt[sku] = data.draw(st.integers(0, shipped - 1))
                elif part == "one too many":
                    receipt[sku] = shipped + 1
            unshipped = [sku for sku in SKUS if sku not in t.shipped]
            if unshipped and data.draw(st.integers(0, 4)) == 0:
                receipt[unshipped[0]] = 1
            supply = data.draw(st.sampled_from(("", *SUPPLIES)))

        def call() -> Coroutine[Any, Any, Transfer]:
            return self.store.receive_transfer(
                transfer_id, list(receipt.items()), supply_id=supply or None
            )

        refusal = self.model.receive_refusal(transfer_id, receipt, supply)
        if refusal is not None:
            self.refused(call, refusal, "receipt")
            return
        if t.state is TransferState.RECEIVED:
            assert self.unchanged(call, "receipt").replayed
            return
        result = self.run(call())
        self.model.apply_receive(transfer_id, receipt, supply)
        assert (result.state, result.replayed) == (TransferState.RECEIVED, False)
        assert result.lines == [
            TransferLine(sku, n, t.received[sku]) for sku, n in sorted(t.shipped.items())
        ]
        short = any(line.received < line.shipped for line in result.lines)
        self.note("receipt: short" if short else "receipt: in full")

    @precondition(lambda self: bool(self.model.transfers))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """Cancel: a shipped transfer's units go back; again, a replay; received: refused."""
        transfer_id = self.pick_transfer(data)
        t = self.model.transfers[transfer_id]

        def call() -> Coroutine[Any, Any, Transfer]:
            return self.store.cancel_transfer(transfer_id)

        refusal = self.model.cancel_refusal(transfer_id)
        if refusal is not None:
            self.refused(call, refusal, "cancel")
            return
        if t.state is TransferState.CANCELLED:
            assert self.unchanged(call, "cancel").replayed
            return
        result = self.run(call())
        self.model.apply_cancel(transfer_id)
        assert (result.state, result.replayed) == (TransferState.CANCELLED, False)
        self.note("cancel: done")

    # -- incoming supply -------------------------------------------------------------------

    @rule(data=st.data())
    def incoming_supply(self, data: st.DataObject) -> None:
        """Set a supply expected at a position (create or replace it), or remove one: one it
        expects (when there is one), or any (one it does not expect is answered False and
        changes nothing)."""
        expected = sorted(
            (sku, loc, a.id)
            for (sku, loc), arrivals in self.model.arrivals.items()
            for a in arrivals.values()
            if a.kind is ArrivalKind.SUPPLY
        )
        action = data.draw(st.sampled_from(("set", "remove one expected", "remove any")))
        if action == "remove one expected" and len(expected) > 0:
            sku, loc, supply_id = data.draw(st.sampled_from(expected))
        else:
            sku, loc = data.draw(st.sampled_from(POSITIONS))
            supply_id = data.draw(st.sampled_from(SUPPLIES))
        if action == "set":
            qty = data.draw(st.integers(1, 6))
            expected_at_ms = data.draw(st.sampled_from(EXPECTED_AT_MS))
            self.run(self.store.set_incoming(sku, loc, supply_id, qty, expected_at_ms))
            self.model.set_supply(sku, loc, supply_id, qty, expected_at_ms)
            self.note("supply: set")
            return

        def remove() -> Coroutine[Any, Any, bool]:
            return self.store.remove_incoming(sku, loc, supply_id)

        if not self.model.remove_supply(sku, loc, supply_id):
            assert self.unchanged(remove, "supply") is False  # not expected there: a no-op
            return
        assert self.run(remove()) is True
        self.note("supply: removed")

    # -- availability counts no unit beyond the shelf (c) ----------------------------------

    @rule(data=st.data())
    def reserve_one_more_than_available(self, data: st.DataObject) -> None:
        """The reserve script's own reading of available: one unit more is refused, whatever
        lies damaged, in inspection or in transit there. (Refused, it still claims its id in
        the namespace's directory, so only the domain's keys are compared.)"""
        sku, loc = data.draw(st.sampled_from(POSITIONS))
        available = max(0, self.model.available_raw(sku, loc))
        rid = "probe-" + self.event_id()
        domain_keys = f"ss:{{{self.store.settings.namespace}:"
        before = {k: v for k, v in self.keyspace().items() if k.startswith(domain_keys)}
        with pytest.raises(InsufficientStock) as caught:
            self.run(self.store.reserve(rid, "web", [Line(sku, loc, available + 1)], HUGE_TTL))
        assert [s.as_dict() for s in caught.value.short_lines] == [
            {"sku": sku, "location_id": loc, "requested": available + 1, "available": available}
        ]
        after = {k: v for k, v in self.keyspace().items() if k.startswith(domain_keys)}
        assert after == before

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def shelf_matches_model(self) -> None:
        for sku in SKUS:
            found = {p.location_id: p for p, _ in self.run(self.store.positions(sku, LOCATIONS))}
            for loc in LOCATIONS:
                p = found[loc]
                # (a) every bucket, and what is on its way
                assert (p.on_hand, p.damaged, p.quality_control, p.in_transit) == (
                    self.buckets_of(sku, loc)
                ), f"{sku} at {loc}"
                assert (p.reserved, p.safety_stock) == (
                    self.model.reserved[sku][loc],
                    self.model.safety[sku][loc],
                )
                arrivals = sorted(self.model.arrivals[(sku, loc)].values(), key=repr)
                assert sorted(p.arrivals, key=repr) == arrivals, f"{sku} at {loc}"
                # (c) as the position reads it
                assert p.available == max(0, p.on_hand - p.reserved - p.safety_stock)
            # (b) Redis's units against the running total of the rules that may change it
            held = sum(
                p.on_hand + p.damaged + p.quality_control + p.in_transit for p in found.values()
            )
            assert held == self.model.conserved[sku], f"{sku}: units not conserved"
        # (c) as the availability script computes it
        for loc in LOCATIONS:
            served = self.run(self.store.location_availability_many(loc, SKUS))
            assert served == {sku: max(0, self.model.available_raw(sku, loc)) for sku in SKUS}

    @invariant()
    def transfers_match_model(self) -> None:
        for transfer_id, t in self.model.transfers.items():
            got = self.run(self.store.get_transfer(transfer_id))
            ends = (got.state, got.from_location_id, got.to_location_id)
            assert ends == (t.state, t.source, t.target)
            assert got.lines == [
                TransferLine(sku, n, t.received.get(sku, 0)) for sku, n in sorted(t.shipped.items())
            ]
            assert (got.expected_at_ms, got.supply_id) == (t.expected_at_ms, t.supply or None)
        for loc in LOCATIONS:
            listed = self.run(self.store.list_transfers(loc, limit=200))
            assert {x.transfer_id: x.state for x in listed} == {
                transfer_id: t.state
                for transfer_id, t in self.model.transfers.items()
                if loc in (t.source, t.target)
            }

    @invariant()
    def returns_match_model(self) -> None:
        for rid, return_ids in self.model.return_ids.items():
            reservation = self.run(self.store.get_reservation(rid))
            assert reservation.returned_units == {
                sku: n for sku, n in self.model.returned[rid].items() if n
            }
            assert reservation.return_ids == tuple(return_ids)


# Each operation a run must have seen accepted and (but sales) refused or replayed, so that
# it cannot pass by never reaching them. Finer outcomes are not required: Hypothesis spreads a
# run's steps very unevenly over the rules (swarm testing), so any one of them may be missing
# from a whole run (a failure prints how often each was seen).
OPERATIONS = ("move", "return", "shipment", "receipt", "cancel", "supply", "sale")


def unexercised(outcomes: Counter[str]) -> list[str]:
    missing = []
    for operation in OPERATIONS:
        seen = [o.split(": ", 1)[1] for o in outcomes if o.startswith(operation + ": ")]
        declined = [o for o in seen if o.startswith(("refused", "replayed"))]
        if len(declined) == len(seen):
            missing.append(f"{operation} accepted")
        if not declined and operation != "sale":
            missing.append(f"{operation} refused or replayed")
    return missing


def test_shelf_state_machine_matches_model(redis_url: str) -> None:
    ShelfMachine.url = redis_url
    ShelfMachine.outcomes = Counter()
    run_state_machine_as_test(
        ShelfMachine,
        # No explain phase: it traces every line run (Python 3.11), which made shrinking a
        # failure take minutes instead of seconds.
        settings=settings(
            max_examples=100,
            stateful_step_count=30,
            deadline=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        ),
    )
    missing = unexercised(ShelfMachine.outcomes)
    assert not missing, f"never exercised: {missing}; exercised: {ShelfMachine.outcomes}"
