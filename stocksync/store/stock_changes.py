"""Changes to stock and locations: upserts, absolute counts, physical deltas and till sales."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, NotRequired, TypedDict, Unpack

from stocksync.domain.errors import DomainChange, NotFound, StockSyncError
from stocksync.domain.model import (
    Location,
    Position,
    StockChangeResult,
    event_fingerprint,
)
from stocksync.store.outbox import OutboxEvent, decode_stored_events
from stocksync.store.replies import raise_for_refusal
from stocksync.store.routing import Routing
from stocksync.store.stale_routes import reroute, unknown_location

# Rows of one batched stock_changes call. A row costs the server 25-45 µs (measured: a dozen
# commands for its idempotency record, position and outbox event, and their AOF entries), and
# a call runs alone on the server: 50 rows keep a call near 1-2 ms, while the call's own cost
# (the FCALL, three per-call reads, the round trip) is already small per row.
STOCK_ROWS_PER_CALL = 50


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

    @property
    def source(self) -> str:
        return str(self.args[4] if self.script == "set_count" else self.args[2])

    @property
    def row(self) -> tuple[str | int, ...]:
        """This call as one row of stock_changes.lua."""
        if self.script == "set_count":
            on_hand, as_of, expected, safety, _, event_id, fp = self.args
            if expected != "" or safety != "":
                raise ValueError("a count with expected_on_hand or safety_stock is its own call")
            return ("c", self.sku, self.location_id, on_hand, as_of, "", event_id, fp, "")
        delta, reason, _, event_id, occurred, fp, supply = self.args
        return ("a", self.sku, self.location_id, delta, occurred, reason, event_id, fp, supply)


class StockRowResult(NamedTuple):  # a tuple: built once per row of a file, cheaply
    """What one row of a batched call did, compactly: no position, only its event's seq."""

    outcome: str  # "applied" | "stale" (recorded, an as-of rule loser) | "duplicate" (replay)
    seq: int  # the row's event (a duplicate's: the original's)


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
    # A receipt of an incoming supply (a purchase order): a positive delta applied consumes it
    # at the position, up to the units received.
    supply_id: NotRequired[str | None]


class SaleOptions(TypedDict):
    """What a till sale carries beside its units."""

    source: str
    source_event_id: str
    occurred_at_ms: NotRequired[int | None]  # a late report goes through the as-of rule
    reservation_id: NotRequired[str | None]  # the hold the customer collects, if any


def _arg(value: int | None) -> str | int:
    return "" if value is None else value


class StockChanges(Routing):
    async def upsert_location(self, location: Location) -> bool:
        """Create or update a location in its domain; True when it was created. A location
        keeps the domain it was created in (:class:`DomainChange` otherwise: moving it is an
        offline operation)."""
        held = await self.register_location(location.location_id, location.domain)
        if held != location.domain:
            raise DomainChange(
                f"location {location.location_id!r} is in stock domain {held!r}, not "
                f"{location.domain!r}; a location moves to another domain only with "
                "`stocksync domains move-location` (refused while it has active holds)",
                domain=held,
            )
        reply = await self.run(
            "upsert_location",
            location.location_id,
            location.name,
            location.kind,
            "" if location.lat is None else repr(location.lat),
            "" if location.lon is None else repr(location.lon),
            int(location.pickup),
            int(location.ship),
            domain=location.domain,
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
        supply_id = options.get("supply_id") or ""
        # The supply enters the fingerprint only when named: a delta without one keeps the
        # fingerprint it always had, so replays of changes made before still match.
        parts: list[object] = ["adjust", sku, location_id, delta, reason, occurred_at_ms]
        fp = event_fingerprint(*parts, *([supply_id] if supply_id else []))
        args = (
            delta,
            reason,
            options["source"],
            options["source_event_id"],
            _arg(occurred_at_ms),
            fp,
            supply_id,
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
        domain = await self.domain_of_location(location_id)
        args = (
            sku,
            location_id,
            qty,
            reservation_id,
            options["source"],
            options["source_event_id"],
            _arg(occurred_at_ms),
            fp,
        )
        reply = await self.run("sell", *args, domain=domain)
        if unknown_location(reply) and (fresh := await reroute(self, [location_id], domain)):
            domain = fresh  # a stale route: the location moved to another domain
            reply = await self.run("sell", *args, domain=domain)
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
            sale_events=decode_stored_events(self.keys_of(domain).ledger_namespace, events),
        )

    async def stock_change(self, call: StockCall) -> StockChangeResult:
        """Run one count or delta built by ``count_call`` or ``adjust_call``."""
        domain = await self.domain_of_location(call.location_id)
        reply = await self.run(call.script, call.sku, call.location_id, *call.args, domain=domain)
        if unknown_location(reply) and (fresh := await reroute(self, [call.location_id], domain)):
            # a stale route: the location moved to another domain
            args = (call.sku, call.location_id, *call.args)
            reply = await self.run(call.script, *args, domain=fresh)
        return _stock_change_result(call, reply)

    async def stock_changes(
        self, calls: Sequence[StockCall]
    ) -> list[StockRowResult | StockSyncError]:
        """Many counts and deltas in batched script calls (bulk imports, polled pages): up to
        ``STOCK_ROWS_PER_CALL`` rows of one source per call, sent one call after the other,
        so rows apply in order.

        Each row is applied as alone (as-of rule, idempotency, its outbox event); they are not
        one transaction. A row the engine refuses gives its error in place of a result, and
        the others go on. Counts here carry no compare-and-set or safety stock.
        """
        results: list[StockRowResult | StockSyncError] = []
        domains = [await self.domain_of_location(call.location_id) for call in calls]
        for start, end, source in _runs(calls, domains):
            results += await self._stock_rows(calls[start:end], source, domains[start])
        # Rows refused as unknown_location by a stale route (their location moved to another
        # domain) go once more, in order, to the domain the directory now names.
        stale = [
            i
            for i, r in enumerate(results)
            if isinstance(r, NotFound)
            and await reroute(self, [calls[i].location_id], domains[i]) is not None
        ]
        if stale:
            again = await self.stock_changes([calls[i] for i in stale])
            for i, result in zip(stale, again, strict=True):
                results[i] = result
        return results

    async def _stock_rows(
        self, calls: Sequence[StockCall], source: str, domain: str
    ) -> list[StockRowResult | StockSyncError]:
        args: list[str | int] = [source]
        for call in calls:
            args += call.row
        reply = await self.run("stock_changes", *args, domain=domain)
        codes = reply[0]
        results: list[StockRowResult | StockSyncError] = []
        for call, code, seq in zip(calls, codes, reply[1:], strict=True):
            outcome = _ROW_OUTCOMES.get(code)
            if outcome is not None:
                results.append(StockRowResult(outcome, int(seq)))
            else:
                results.append(_row_refusal(call, code))
        return results


# stock_changes.lua's row codes: what happened to a row it did not refuse.
_ROW_OUTCOMES = {"a": "applied", "s": "stale", "d": "duplicate"}
_ROW_REFUSALS = {"L": "unknown_location", "C": "idempotency_conflict", "R": "stock_regressed"}


def _row_refusal(call: StockCall, code: str) -> StockSyncError:
    status = _ROW_REFUSALS.get(code)
    if status is None:
        raise RuntimeError(f"unexpected row code {code!r} from stock_changes")
    detail = {"unknown_location": call.location_id, "stock_regressed": call.sku}.get(status)
    try:
        raise_for_refusal([status, *([detail] if detail else [])], action=call.action)
    except StockSyncError as exc:
        return exc
    raise AssertionError("a refusal status always raises")


def _runs(calls: Sequence[StockCall], domains: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, source) of consecutive calls with one source in one domain, at most
    ``STOCK_ROWS_PER_CALL`` each."""
    runs: list[tuple[int, int, str]] = []
    start = 0
    for i in range(1, len(calls) + 1):
        if (
            i == len(calls)
            or calls[i].source != calls[start].source
            or domains[i] != domains[start]
            or i - start == STOCK_ROWS_PER_CALL
        ):
            runs.append((start, i, calls[start].source))
            start = i
    return runs


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
