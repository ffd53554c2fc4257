"""Changes to stock and locations: upserts, absolute counts, physical deltas and till sales."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, Unpack

from stocksync.domain.errors import StockSyncError
from stocksync.domain.model import (
    Location,
    Position,
    StockChangeResult,
    event_fingerprint,
)
from stocksync.store.base import ScriptStore
from stocksync.store.outbox import OutboxEvent, decode_stored_events
from stocksync.store.replies import raise_for_refusal


@dataclass(frozen=True)
class StockCall:
    """One count or delta script call, built but not yet sent."""

    script: str
    sku: str
    location_id: str
    args: tuple[str | int, ...]

    @property
    def action(self) -> str:
        return "count" if self.script == "set_count" else "adjust"


@dataclass(frozen=True)
class SaleResult:
    """A till sale in one script call: the hold it named, if that covered it, and the rest."""

    position: Position  # the sale's position after it
    replayed: bool  # (source, source_event_id) was seen before: nothing changed
    fulfilled: bool  # this sale fulfilled the reservation it named
    repeated: bool  # the reservation was fulfilled before: the units it held are not sold again
    covered: int  # units of the sale's line the reservation held
    applied: bool  # units beyond the hold left on_hand (False: none, or stale by the as-of rule)
    seq: int
    at_risk_reservations: int = 0
    sale_events: tuple[OutboxEvent, ...] = ()  # the fulfilment's events, for the ledger


class CountOptions(TypedDict, total=False):
    """What an absolute count may carry beside its number (all optional)."""

    as_of_ms: int | None  # when it was taken (as-of rule); None: now
    expected_on_hand: int | None  # compare-and-set
    safety_stock: int | None  # None: unchanged
    source: str  # default "api"
    source_event_id: str | None  # idempotency key with source


class AdjustOptions(TypedDict):
    """What a physical delta carries beside its number."""

    reason: str
    source: str
    source_event_id: str
    occurred_at_ms: NotRequired[int | None]  # a late report goes through the as-of rule


class SaleOptions(TypedDict):
    """What a till sale carries beside its units."""

    source: str
    source_event_id: str
    occurred_at_ms: NotRequired[int | None]  # a late report goes through the as-of rule
    reservation_id: NotRequired[str | None]  # the hold the customer collects, if any


def _arg(value: int | None) -> str | int:
    return "" if value is None else value


class StockChanges(ScriptStore):
    async def upsert_location(self, location: Location) -> bool:
        """Create or update a location; True when it was created."""
        reply = await self.run(
            "upsert_location",
            location.location_id,
            location.name,
            location.kind,
            "" if location.lat is None else repr(location.lat),
            "" if location.lon is None else repr(location.lon),
            int(location.pickup),
            int(location.ship),
        )
        raise_for_refusal(reply, action="upsert_location", subject=location.location_id)
        return bool(int(reply[1]))

    def count_call(
        self, sku: str, location_id: str, on_hand: int, **options: Unpack[CountOptions]
    ) -> StockCall:
        """The script call of an absolute count (run it with ``stock_changes`` for many)."""
        as_of_ms = options.get("as_of_ms")
        expected = options.get("expected_on_hand")
        safety = options.get("safety_stock")
        fp = event_fingerprint("count", sku, location_id, on_hand, as_of_ms, expected, safety)
        args = (
            on_hand,
            _arg(as_of_ms),
            _arg(expected),
            _arg(safety),
            options.get("source", "api"),
            options.get("source_event_id") or "",
            fp,
        )
        return StockCall("set_count", sku, location_id, args)

    def adjust_call(
        self, sku: str, location_id: str, delta: int, **options: Unpack[AdjustOptions]
    ) -> StockCall:
        """The script call of a physical delta."""
        occurred_at_ms = options.get("occurred_at_ms")
        reason = options["reason"]
        fp = event_fingerprint("adjust", sku, location_id, delta, reason, occurred_at_ms)
        args = (
            delta,
            reason,
            options["source"],
            options["source_event_id"],
            _arg(occurred_at_ms),
            fp,
        )
        return StockCall("adjust", sku, location_id, args)

    async def set_count(
        self, sku: str, location_id: str, on_hand: int, **options: Unpack[CountOptions]
    ) -> StockChangeResult:
        """Apply an absolute count (as-of rule, optional compare-and-set)."""
        return await self.stock_change(self.count_call(sku, location_id, on_hand, **options))

    async def adjust(
        self, sku: str, location_id: str, delta: int, **options: Unpack[AdjustOptions]
    ) -> StockChangeResult:
        """Apply a physical delta, idempotent by (source, source_event_id)."""
        return await self.stock_change(self.adjust_call(sku, location_id, delta, **options))

    async def sell(
        self, sku: str, location_id: str, qty: int, **options: Unpack[SaleOptions]
    ) -> SaleResult:
        """A till sale, in one script call: fulfils the reservation it names when that holds
        units of this line (once), and sells every other unit as a plain sale (never refused).

        Idempotent by (source, source_event_id); a replay returns the fulfilment's events
        again, so a retry after the ledger failed still writes the sale through.
        """
        occurred_at_ms = options.get("occurred_at_ms")
        reservation_id = options.get("reservation_id") or ""
        # A sale naming no hold is keyed as the delta it is (adjust with reason "sale"), so a
        # sale applied as a delta before is replayed, not refused as a conflict.
        parts: list[object] = ["adjust", sku, location_id, -qty, "sale", occurred_at_ms]
        fp = event_fingerprint(*parts, *([reservation_id] if reservation_id else []))
        reply = await self.run(
            "sell",
            sku,
            location_id,
            qty,
            reservation_id,
            options["source"],
            options["source_event_id"],
            _arg(occurred_at_ms),
            fp,
        )
        raise_for_refusal(reply, action="sale")
        applied, on_hand, reserved, safety, seq, flagged = (int(v) for v in reply[1:7])
        hold, covered, events = str(reply[7]), int(reply[8]), str(reply[9])
        return SaleResult(
            position=Position(sku, location_id, on_hand, reserved, safety),
            replayed=reply[0] == "replay",
            fulfilled=hold == "fulfilled",
            repeated=hold == "repeated",
            covered=covered,
            applied=bool(applied),
            seq=seq,
            at_risk_reservations=flagged,
            sale_events=decode_stored_events(self.keys.namespace, events),
        )

    async def stock_change(self, call: StockCall) -> StockChangeResult:
        """Run one count or delta built by ``count_call`` or ``adjust_call``."""
        reply = await self.run(call.script, call.sku, call.location_id, *call.args)
        return _stock_change_result(call, reply)

    async def stock_changes(
        self, calls: Sequence[StockCall]
    ) -> list[StockChangeResult | StockSyncError]:
        """Many counts and deltas in one pipelined round trip (bulk imports).

        Each call is still its own script run, atomic and idempotent as alone; they are not
        one transaction. A call the engine refuses gives its error in place of a result.
        """
        replies = await self.run_pipelined(
            [(c.script, (c.sku, c.location_id, *c.args)) for c in calls]
        )
        results: list[StockChangeResult | StockSyncError] = []
        for call, reply in zip(calls, replies, strict=True):
            try:
                results.append(_stock_change_result(call, reply))
            except StockSyncError as exc:
                results.append(exc)
        return results


def _stock_change_result(call: StockCall, reply: list[Any]) -> StockChangeResult:
    raise_for_refusal(reply, action=call.action)
    applied, on_hand, reserved, safety, seq, flagged = (int(v) for v in reply[1:7])
    return StockChangeResult(
        position=Position(call.sku, call.location_id, on_hand, reserved, safety),
        applied=bool(applied),
        replayed=reply[0] == "replay",
        seq=seq,
        at_risk_reservations=flagged,
    )
