"""A plain Python model of a position's stock beyond the shelf: buckets, arrivals, returns and
transfers. It predicts what the store must answer (accepted, or refused with which error and
which fields) and what every bucket holds after it; tests/store/test_shelf_state_machine.py
runs the real store beside it.

Each operation has a ``*_refusal`` (pure: the refusal the store must give, None when it must
accept) and an ``apply_*`` (the accepted operation's effect). ``conserved`` is kept apart from
the buckets: Σ on_hand + damaged + quality_control + in_transit of a SKU over all its positions
changes only by counts, adjustments, sales, returns (+), write-offs and transfer shortfalls
(-), so only the operations of those kinds touch it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from stocksync.domain.errors import (
    IdempotencyConflict,
    InsufficientStock,
    InsufficientUnits,
    InvalidTransition,
    NotFound,
    NotFulfilled,
    ReceiveExceedsShipped,
    ReturnExceedsFulfilled,
    ShortLine,
    StockSyncError,
)
from stocksync.domain.model import (
    DISPOSITION_BUCKET,
    WRITTEN_OFF,
    Arrival,
    ArrivalKind,
    Line,
    State,
    TransferState,
)
from stocksync.domain.returns import ReturnLine, normalize_return_lines

BUCKETS = ("on_hand", "damaged", "quality_control", "in_transit")  # the units a position owns
Units = dict[str, dict[str, int]]  # sku -> location -> units


@dataclass(frozen=True)
class Refusal:
    """The error the store must raise, and the fields it must carry (its ``extra``)."""

    error: type[StockSyncError]
    extra: dict[str, object] = field(default_factory=dict)


@dataclass
class ModelTransfer:
    source: str
    target: str
    shipped: dict[str, int]  # sku -> units
    expected_at_ms: int | None
    force: bool
    state: TransferState = TransferState.SHIPPED
    received: dict[str, int] = field(default_factory=dict)
    supply: str = ""


def units(skus: Iterable[str], locations: Iterable[str]) -> Units:
    return {sku: dict.fromkeys(locations, 0) for sku in skus}


class ShelfModel:
    """Positions of ``skus`` at ``locations``. ``on_hand``, ``reserved``, ``safety``, ``states``
    and ``lines`` may be shared with a model of the reservations (the same dicts)."""

    def __init__(
        self,
        on_hand: Units,
        reserved: Units,
        safety: Units,
        states: dict[str, State],
        lines: dict[str, list[Line]],
    ) -> None:
        skus, locations = list(on_hand), list(next(iter(on_hand.values())))
        self.reserved, self.safety = reserved, safety
        self.states, self.lines = states, lines
        self.buckets: dict[str, Units] = {
            "on_hand": on_hand,
            **{b: units(skus, locations) for b in BUCKETS[1:]},
        }
        self.conserved: Counter[str] = Counter()
        self.arrivals: dict[tuple[str, str], dict[str, Arrival]] = defaultdict(dict)
        self.returns: dict[str, tuple[str | None, list[ReturnLine]]] = {}
        self.returned: dict[str, Counter[str]] = defaultdict(Counter)
        self.return_ids: dict[str, list[str]] = defaultdict(list)
        self.transfers: dict[str, ModelTransfer] = {}

    def on_hand(self, sku: str, loc: str) -> int:
        return self.buckets["on_hand"][sku][loc]

    def available_raw(self, sku: str, loc: str) -> int:
        return self.on_hand(sku, loc) - self.reserved[sku][loc] - self.safety[sku][loc]

    def add(self, bucket: str, sku: str, loc: str, qty: int) -> None:
        self.buckets[bucket][sku][loc] += qty

    def total(self, sku: str) -> int:
        """Σ over the SKU's positions of every bucket a unit can be in."""
        return sum(self.buckets[b][sku][loc] for b in BUCKETS for loc in self.buckets[b][sku])

    # -- counts, deltas and sales (the units entering or leaving the books) ---------------

    def apply_count(self, sku: str, loc: str, count: int) -> None:
        self.conserved[sku] += count - self.on_hand(sku, loc)
        self.buckets["on_hand"][sku][loc] = count

    def apply_delta(self, sku: str, loc: str, delta: int, supply_id: str | None = None) -> None:
        self.conserved[sku] += delta
        self.add("on_hand", sku, loc, delta)
        if supply_id is not None:
            self.consume(sku, loc, supply_id, delta)

    def sale_covers(self, rid: str | None, sku: str, loc: str) -> int:
        """Units of the line a till sale names that its reservation covers: an active
        reservation's units of this SKU at this location (0: none, or no active hold)."""
        if rid is None or self.states.get(rid) not in (State.HELD, State.CONFIRMED, State.READY):
            return 0
        return sum(ln.qty for ln in self.lines[rid] if (ln.sku, ln.location_id) == (sku, loc))

    def apply_fulfil(self, rid: str) -> None:
        """A fulfilment: every line's units leave on_hand and reserved (they were sold)."""
        for ln in self.lines[rid]:
            self.reserved[ln.sku][ln.location_id] -= ln.qty
            self.add("on_hand", ln.sku, ln.location_id, -ln.qty)
            self.conserved[ln.sku] -= ln.qty
        self.states[rid] = State.FULFILLED

    # -- moves between buckets ---------------------------------------------------------------

    def move_refusal(self, sku: str, loc: str, qty: int, source: str) -> Refusal | None:
        have = self.buckets[source][sku][loc]
        if have >= qty:
            return None
        return Refusal(
            InsufficientUnits,
            {"bucket": source, "sku": sku, "location_id": loc, "requested": qty, "available": have},
        )

    def apply_move(self, sku: str, loc: str, qty: int, source: str, target: str) -> None:
        self.add(source, sku, loc, -qty)
        if target == WRITTEN_OFF:
            self.conserved[sku] -= qty  # written off: the units leave the books
        else:
            self.add(target, sku, loc, qty)

    # -- returns ---------------------------------------------------------------------------

    def return_refusal(self, rid: str | None, lines: list[ReturnLine]) -> Refusal | None:
        """Linked: the reservation exists, is fulfilled, and no SKU comes back more than it
        fulfilled, counting earlier returns (the first such SKU in name order is reported)."""
        if rid is None:
            return None
        if rid not in self.states:
            return Refusal(NotFound, {"resource": "reservation"})
        state = self.states[rid]
        if state is not State.FULFILLED:
            return Refusal(NotFulfilled, {"state": state.value})
        fulfilled = Counter[str]()
        for ln in self.lines[rid]:
            fulfilled[ln.sku] += ln.qty
        requested = Counter[str]()
        for rl in lines:
            requested[rl.sku] += rl.qty
        for sku in sorted(requested):
            returned = self.returned[rid][sku]
            if returned + requested[sku] > fulfilled[sku]:
                return Refusal(
                    ReturnExceedsFulfilled,
                    {
                        "sku": sku,
                        "fulfilled": fulfilled[sku],
                        "returned": returned,
                        "requested": requested[sku],
                    },
                )
        return None

    def apply_return(self, return_id: str, rid: str | None, lines: list[ReturnLine]) -> None:
        for rl in lines:
            self.add(DISPOSITION_BUCKET[rl.disposition].value, rl.sku, rl.location_id, rl.qty)
            self.conserved[rl.sku] += rl.qty  # units coming back enter the books
            if rid is not None:
                self.returned[rid][rl.sku] += rl.qty
        if rid is not None:
            self.return_ids[rid].append(return_id)
        self.returns[return_id] = (rid, normalize_return_lines(lines))

    # -- transfers ---------------------------------------------------------------------------

    def ship_refusal(self, source: str, lines: dict[str, int], *, force: bool) -> Refusal | None:
        """Without force each line fits in what is available at the source (every short line
        listed); with force in on_hand (the first line in SKU order that does not)."""
        ordered = sorted(lines.items())
        if force:
            for sku, qty in ordered:
                have = self.on_hand(sku, source)
                if qty > have:
                    extra: dict[str, object] = {"bucket": "on_hand", "sku": sku}
                    extra |= {"location_id": source, "requested": qty, "available": max(0, have)}
                    return Refusal(InsufficientUnits, extra)
            return None
        short = [
            ShortLine(sku, source, qty, max(0, self.available_raw(sku, source)))
            for sku, qty in ordered
            if qty > self.available_raw(sku, source)
        ]
        if not short:
            return None
        return Refusal(InsufficientStock, {"short_lines": [s.as_dict() for s in short]})

    def apply_ship(
        self,
        transfer_id: str,
        source: str,
        target: str,
        lines: dict[str, int],
        expected_at_ms: int | None,
        *,
        force: bool,
    ) -> None:
        for sku, qty in lines.items():
            self.add("on_hand", sku, source, -qty)
            self.add("in_transit", sku, target, qty)
            arrival = Arrival(ArrivalKind.TRANSFER, transfer_id, qty, expected_at_ms)
            self.arrivals[(sku, target)]["t:" + transfer_id] = arrival
        self.transfers[transfer_id] = ModelTransfer(
            source, target, dict(lines), expected_at_ms, force
        )

    def ship_replay_refusal(
        self, transfer_id: str, lines: dict[str, int], expected_at_ms: int | None, force: bool
    ) -> Refusal | None:
        """A shipment under a known id: the same request is a replay, another a conflict."""
        t = self.transfers[transfer_id]
        if (t.shipped, t.expected_at_ms, t.force) == (lines, expected_at_ms, force):
            return None
        return Refusal(IdempotencyConflict)

    def receive_refusal(
        self, transfer_id: str, receipt: dict[str, int], supply: str
    ) -> Refusal | None:
        """None when the receipt applies, or repeats the receipt the transfer had."""
        t = self.transfers[transfer_id]
        if t.state is TransferState.RECEIVED:
            same = supply == t.supply and set(receipt) <= set(t.shipped)
            if same and all(receipt.get(sku, 0) == t.received[sku] for sku in t.shipped):
                return None  # the same receipt again: a replay
            return Refusal(InvalidTransition, {"state": "received", "action": "receive"})
        if t.state is TransferState.CANCELLED:
            return Refusal(InvalidTransition, {"state": "cancelled", "action": "receive"})
        for sku, qty in sorted(receipt.items()):
            if qty > t.shipped.get(sku, 0):
                extra = {"sku": sku, "shipped": t.shipped.get(sku, 0), "requested": qty}
                return Refusal(ReceiveExceedsShipped, extra)
        return None

    def apply_receive(self, transfer_id: str, receipt: dict[str, int], supply: str) -> None:
        """The whole shipment leaves in_transit; what arrived enters on_hand; what did not
        leaves the books (a shortfall)."""
        t = self.transfers[transfer_id]
        for sku, shipped in t.shipped.items():
            received = receipt.get(sku, 0)
            self.add("in_transit", sku, t.target, -shipped)
            self.add("on_hand", sku, t.target, received)
            self.conserved[sku] -= shipped - received  # a shortfall leaves the books
            del self.arrivals[(sku, t.target)]["t:" + transfer_id]
            if supply:
                self.consume(sku, t.target, supply, received)
            t.received[sku] = received
        t.state, t.supply = TransferState.RECEIVED, supply

    def cancel_refusal(self, transfer_id: str) -> Refusal | None:
        if self.transfers[transfer_id].state is TransferState.RECEIVED:
            return Refusal(InvalidTransition, {"state": "received", "action": "cancel"})
        return None

    def apply_cancel(self, transfer_id: str) -> None:
        t = self.transfers[transfer_id]
        for sku, shipped in t.shipped.items():
            self.add("in_transit", sku, t.target, -shipped)
            self.add("on_hand", sku, t.source, shipped)
            del self.arrivals[(sku, t.target)]["t:" + transfer_id]
        t.state = TransferState.CANCELLED

    # -- incoming supply -------------------------------------------------------------------

    def set_supply(self, sku: str, loc: str, supply_id: str, qty: int, at_ms: int) -> None:
        self.arrivals[(sku, loc)]["s:" + supply_id] = Arrival(
            ArrivalKind.SUPPLY, supply_id, qty, at_ms
        )

    def remove_supply(self, sku: str, loc: str, supply_id: str) -> bool:
        return self.arrivals[(sku, loc)].pop("s:" + supply_id, None) is not None

    def consume(self, sku: str, loc: str, supply_id: str, received: int) -> None:
        """A receipt naming a supply consumes up to the units received; none left: removed."""
        held = self.arrivals[(sku, loc)].get("s:" + supply_id)
        if held is None or received <= 0:
            return
        left = held.qty - min(received, held.qty)
        if left == 0:
            del self.arrivals[(sku, loc)]["s:" + supply_id]
        else:
            self.arrivals[(sku, loc)]["s:" + supply_id] = Arrival(
                held.kind, held.id, left, held.expected_at_ms
            )
