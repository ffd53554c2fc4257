"""EngineGateway: applies connector commands to the core store, idempotently.

Every command is safe to apply again: counts, deltas and sales are idempotent by
``(source, source_event_id)``, orders by reservation id, and the units a fulfilled reservation
held are never sold again by a sale naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import anyio.to_thread

from connectors.framework.commands import (
    Adjust,
    CancelOrder,
    Command,
    MoveUnits,
    PlaceOrder,
    ReceiveTransfer,
    RecordReturn,
    Sale,
    SetCount,
)
from stocksync.domain.errors import (
    CrossDomain,
    InvalidTransition,
    NotFound,
    ReturnWindowClosed,
    StockSyncError,
)
from stocksync.domain.model import ACTIVE, Reservation, State, StockChangeResult
from stocksync.domain.returns import ArchivedSale, ReturnLine
from stocksync.ledger.history import archived_sale
from stocksync.plugins import EngineContext
from stocksync.store.returns import ArchiveLookup
from stocksync.store.stock_changes import StockCall


class Applied(StrEnum):
    """What applying one command did (the ``outcome`` label of the connector metrics)."""

    APPLIED = "applied"
    STALE = "stale"  # recorded, but an absolute count already covers it (as-of rule)
    DUPLICATE = "duplicate"  # delivered before: nothing changed


def _stock_outcome(result: StockChangeResult) -> Applied:
    if result.replayed:
        return Applied.DUPLICATE
    return Applied.APPLIED if result.applied else Applied.STALE


class EngineGateway:
    """The core operations a connector may use, one method per command."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.store = ctx.store

    async def apply(self, command: Command) -> Applied:
        match command:
            case SetCount() | Adjust():
                return await self.stock(command)
            case Sale():
                return await self.sale(command)
            case PlaceOrder():
                return await self.place_order(command)
            case CancelOrder():
                return await self.cancel_order(command)
            case MoveUnits():
                return await self.move(command)
            case RecordReturn():
                return await self.record_return(command)
            case ReceiveTransfer():
                return await self.receive_transfer(command)

    async def stock(self, cmd: SetCount | Adjust) -> Applied:
        """A count or a delta: idempotent by (source, source_event_id), as-of rule."""
        return _stock_outcome(await self.store.stock_change(self._stock_call(cmd)))

    async def stock_batch(
        self, commands: Sequence[SetCount | Adjust]
    ) -> list[Applied | StockSyncError]:
        """Counts and deltas in batched script calls (hundreds of rows per round trip, each
        row applied as alone, in order); a refused command gives its error in its place."""
        calls = [self._stock_call(cmd) for cmd in commands]
        results = await self.store.stock_changes(calls)
        return [r if isinstance(r, StockSyncError) else Applied(r.outcome) for r in results]

    def _stock_call(self, cmd: SetCount | Adjust) -> StockCall:
        if isinstance(cmd, SetCount):
            return self.store.count_call(
                cmd.sku,
                cmd.location_id,
                cmd.on_hand,
                as_of_ms=cmd.as_of_ms,
                source=cmd.source,
                source_event_id=cmd.source_event_id,
            )
        return self.store.adjust_call(
            cmd.sku,
            cmd.location_id,
            cmd.delta,
            reason=cmd.reason,
            source=cmd.source,
            source_event_id=cmd.source_event_id,
            occurred_at_ms=cmd.occurred_at_ms,
            supply_id=cmd.supply_id,
        )

    async def sale(self, cmd: Sale) -> Applied:
        """A till sale: fulfils the reservation it names, sells the rest (never refused).

        One script call decides and applies both, so a hold released or expired while the
        sale is on its way makes it a plain sale instead of a lost one.
        """
        result = await self.store.sell(
            cmd.sku,
            cmd.location_id,
            cmd.qty,
            source=cmd.source,
            source_event_id=cmd.source_event_id,
            occurred_at_ms=cmd.occurred_at_ms,
            reservation_id=cmd.reservation_id,
        )
        if result.sale_events:  # a sale is durable in the ledger before it is acknowledged
            await self.ctx.sales.commit(result.sale_events)
        if result.replayed or result.repeated:
            return Applied.DUPLICATE
        if result.fulfilled:
            return Applied.APPLIED
        return Applied.APPLIED if result.applied else Applied.STALE

    async def place_order(self, cmd: PlaceOrder) -> Applied:
        """Confirm the order's hold; with no hold, reserve and confirm in one script call."""
        held = await self._reservation(cmd.reservation_id)
        if held is None:
            result = await self.store.reserve(
                cmd.reservation_id,
                cmd.channel,
                cmd.lines,
                self.ctx.settings.hold_ttl(cmd.channel),
                cmd.customer_ref,
                confirm=True,
            )
            return Applied.APPLIED if result.created else Applied.DUPLICATE
        if held.state is State.HELD:
            confirmed = await self.store.confirm(cmd.reservation_id)
            return Applied.DUPLICATE if confirmed.repeated else Applied.APPLIED
        if held.state in ACTIVE or held.state is State.FULFILLED:
            return Applied.DUPLICATE  # confirmed before (or already further along)
        raise InvalidTransition(
            f"order's reservation {cmd.reservation_id!r} is {held.state.value}; it cannot be "
            "confirmed (the hold lapsed before the order arrived)",
            state=held.state.value,
            action="confirm",
        )

    async def cancel_order(self, cmd: CancelOrder) -> Applied:
        held = await self._reservation(cmd.reservation_id)
        if held is None or held.state not in ACTIVE:
            return Applied.DUPLICATE  # nothing held for it, or already released or sold
        result = await self.store.release(cmd.reservation_id)
        return Applied.DUPLICATE if result.repeated else Applied.APPLIED

    async def move(self, cmd: MoveUnits) -> Applied:
        """Units between a position's buckets (or written off): idempotent by (source,
        source_event_id); refused when the source bucket lacks them."""
        result = await self.store.move_units(
            cmd.sku,
            cmd.location_id,
            cmd.qty,
            from_bucket=cmd.from_bucket,
            to_bucket=cmd.to_bucket,
            reason=cmd.reason,
            source=cmd.source,
            source_event_id=cmd.source_event_id,
            occurred_at_ms=cmd.occurred_at_ms,
        )
        if result.replayed:
            return Applied.DUPLICATE
        return Applied.APPLIED if result.applied else Applied.STALE

    async def record_return(self, cmd: RecordReturn) -> Applied:
        """A return, idempotent by its id.

        One whose reservation is only a guess (``link_if_found``) is recorded unlinked when it
        cannot be linked for a reason that says nothing against the return: the engine does
        not know that reservation, it was fulfilled before the return window, or it is in
        another stock domain than the units came back to (the store refuses each before it
        changes anything; the docs of returns advise an unlinked return for the last two).
        A reservation that was not fulfilled, or a return of more than it sold, is refused.
        """
        lines = [ReturnLine(ln.sku, ln.location_id, ln.qty, ln.disposition) for ln in cmd.lines]
        when = cmd.occurred_at_ms
        try:
            result = await self.store.record_return(
                cmd.return_id,
                lines,
                reservation_id=cmd.reservation_id,
                source=cmd.source,
                archive=self._archive(cmd.reservation_id),
                occurred_at_ms=when,
            )
        except (NotFound, ReturnWindowClosed, CrossDomain) as exc:
            unknown = isinstance(exc, NotFound) and exc.extra.get("resource") != "reservation"
            if not cmd.link_if_found or unknown:
                raise
            result = await self.store.record_return(
                cmd.return_id, lines, source=cmd.source, occurred_at_ms=when
            )
        return Applied.DUPLICATE if result.replayed else Applied.APPLIED

    def _archive(self, reservation_id: str | None) -> ArchiveLookup | None:
        """How the store reads a reservation Redis pruned: the ledger (a worker thread)."""
        if reservation_id is None:
            return None
        engine = self.ctx.engine

        async def lookup(namespaces: Sequence[str]) -> ArchivedSale | None:
            return await anyio.to_thread.run_sync(archived_sale, engine, namespaces, reservation_id)

        return lookup

    async def receive_transfer(self, cmd: ReceiveTransfer) -> Applied:
        """A transfer's receipt; the same receipt again is a replay."""
        transfer = await self.store.receive_transfer(
            cmd.transfer_id, cmd.lines, supply_id=cmd.supply_id
        )
        return Applied.DUPLICATE if transfer.replayed else Applied.APPLIED

    async def _reservation(self, reservation_id: str | None) -> Reservation | None:
        if not reservation_id:
            return None
        try:
            return await self.store.get_reservation(reservation_id)
        except NotFound:
            return None
