"""Moves between a position's buckets: on_hand, damaged, quality_control, or written off."""

from __future__ import annotations

from typing import Any

from stocksync.domain.errors import InsufficientUnits, Unprocessable
from stocksync.domain.model import (
    MOVABLE_BUCKETS,
    WRITTEN_OFF,
    Position,
    event_fingerprint,
)
from stocksync.domain.returns import MoveResult
from stocksync.store.replies import parse_arrivals, raise_for_refusal
from stocksync.store.routing import Routing
from stocksync.store.stale_routes import reroute, unknown_location

_FROM = frozenset(b.value for b in MOVABLE_BUCKETS)
_TO = _FROM | {WRITTEN_OFF}


def move_fingerprint(
    sku: str,
    location_id: str,
    qty: int,
    from_bucket: str,
    to_bucket: str,
    reason: str,
    occurred_at_ms: int | None = None,
) -> str:
    """What a move asks for (its idempotency record's fingerprint); never an adjustment's."""
    when = () if occurred_at_ms is None else (occurred_at_ms,)
    return event_fingerprint("move", sku, location_id, qty, from_bucket, to_bucket, reason, *when)


class Buckets(Routing):
    """The store's moves between a position's buckets."""

    async def move_units(
        self,
        sku: str,
        location_id: str,
        qty: int,
        *,
        from_bucket: str,
        to_bucket: str,
        reason: str,
        source: str,
        source_event_id: str,
        occurred_at_ms: int | None = None,
    ) -> MoveResult:
        """Move ``qty`` units from one bucket of a position to another (or write them off), in
        one script call, idempotent by (source, source_event_id).

        Refused (:class:`InsufficientUnits`) when the source bucket holds fewer units: on_hand
        counts its physical units, not ``available``. A move out of on_hand that leaves fewer
        units than are reserved flags holds there at risk (DESIGN rule 8).

        ``occurred_at_ms``: when a source reporting late says the move happened (None: now).
        Its on_hand side is then a delta of that time for the as-of rule, and is not applied
        again when a count taken at or after it was (``applied`` False if nothing else is)."""
        if from_bucket not in _FROM or to_bucket not in _TO or from_bucket == to_bucket:
            raise Unprocessable(
                f"cannot move units from {from_bucket!r} to {to_bucket!r}: from is one of "
                f"{', '.join(sorted(_FROM))}; to another of them or {WRITTEN_OFF}"
            )
        if qty <= 0:
            raise Unprocessable(f"a move takes a positive number of units, not {qty}")
        fp = move_fingerprint(sku, location_id, qty, from_bucket, to_bucket, reason, occurred_at_ms)
        occurred = "" if occurred_at_ms is None else occurred_at_ms
        args = (
            *(sku, location_id, qty, from_bucket, to_bucket, reason, source, source_event_id),
            *(fp, occurred),
        )
        domain = await self.domain_of_location(location_id)
        reply = await self.run("move_stock", *args, domain=domain)
        if unknown_location(reply) and (fresh := await reroute(self, [location_id], domain)):
            reply = await self.run("move_stock", *args, domain=fresh)  # the location moved
        return _move_result(sku, location_id, qty, reply)


def _move_result(sku: str, location_id: str, qty: int, reply: list[Any]) -> MoveResult:
    if reply[0] == "insufficient_units":
        bucket, have = str(reply[1]), int(reply[2])
        raise InsufficientUnits(
            f"{bucket} of {sku!r} at {location_id!r} holds {have} unit(s), not {qty}; "
            "nothing was moved",
            bucket=bucket,
            sku=sku,
            location_id=location_id,
            requested=qty,
            available=have,
        )
    raise_for_refusal(reply, action="move_units")
    applied, on_hand, reserved, safety, seq, flagged = (int(v) for v in reply[1:7])
    damaged, quality_control, in_transit = (int(v) for v in reply[7:10])
    position = Position(
        sku,
        location_id,
        on_hand,
        reserved,
        safety,
        damaged=damaged,
        quality_control=quality_control,
        in_transit=in_transit,
        arrivals=parse_arrivals(str(reply[10])),
    )
    return MoveResult(position, bool(applied), reply[0] == "replay", seq, flagged)
