"""Replies of the transfer and incoming-supply scripts into domain values and errors.

The refusals these scripts share with the others (unknown_location, stock_regressed, ...) are
decoded by :func:`stocksync.store.replies.raise_for_refusal`; the ones below name a transfer
or a bucket, so they are worded here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stocksync.domain.errors import (
    Forbidden,
    IdempotencyConflict,
    InsufficientStock,
    InsufficientUnits,
    InvalidTransition,
    NotFound,
    ReceiveExceedsShipped,
    TooManyArrivals,
)
from stocksync.domain.model import TransferState
from stocksync.domain.transfers import Transfer, TransferLine
from stocksync.store.replies import field_pairs, optional_int, raise_for_refusal, short_line


def parse_transfer(
    transfer_id: str, fields: dict[str, str], *, replayed: bool = False, at_risk: int = 0
) -> Transfer:
    """A transfer's stored hash (fields in stocksync.store.keys.Keys.transfer)."""
    return Transfer(
        transfer_id=transfer_id,
        from_location_id=fields["from"],
        to_location_id=fields["to"],
        state=TransferState(fields["state"]),
        lines=[TransferLine(sku, int(s), int(r)) for sku, s, r in json.loads(fields["lines"])],
        expected_at_ms=optional_int(fields.get("expected_at")),
        created_at_ms=int(fields["created_at"]),
        updated_at_ms=int(fields["updated_at"]),
        replayed=replayed,
        supply_id=fields.get("supply") or None,
        at_risk_reservations=at_risk,
    )


def transfer_reply(transfer_id: str, reply: Sequence[Any], *, action: str) -> Transfer:
    """A transfer script's reply ``{'ok', changed, at_risk, field, value, ...}``; a refusal
    raises its domain error."""
    raise_for_transfer_refusal(reply, action=action, subject=transfer_id)
    fields = field_pairs(reply[3:])
    return parse_transfer(transfer_id, fields, replayed=not int(reply[1]), at_risk=int(reply[2]))


def raise_for_transfer_refusal(reply: Sequence[Any], *, action: str, subject: str) -> None:
    """Raise the domain error of a refusal of a transfer or supply script; return for a
    success. ``action`` is ship, receive, cancel, set or remove; ``subject`` the transfer or
    supply id."""
    status = reply[0] if reply else "empty"
    rest = reply[1:]
    if status == "not_found":
        what = "incoming supply" if action in ("set", "remove") else "transfer"
        raise NotFound(f"{what} {subject!r} not found", resource=what.replace(" ", "_"))
    if status == "forbidden":
        raise Forbidden(
            f"this key may not {action} transfer {subject!r}: it is not bound to {rest[0]!r}",
            locations=[str(rest[0])],
        )
    if status == "invalid_transition":
        raise InvalidTransition(
            f"cannot {action} transfer {subject!r}: it is {rest[0]}; nothing was changed",
            state=str(rest[0]),
            action=action,
        )
    if status == "idempotency_conflict":
        raise IdempotencyConflict(
            f"transfer {subject!r} was already shipped with a different body; nothing was changed"
        )
    if status == "insufficient_stock":
        raise InsufficientStock(
            [short_line(rest[i : i + 4]) for i in range(0, len(rest), 4)], action="shipped"
        )
    if status == "insufficient_units":
        bucket, sku, location, requested, available = rest[:5]
        raise InsufficientUnits(
            f"{location!r} has {available} unit(s) of {sku!r} in {bucket}, not {requested}; "
            "nothing was changed",
            bucket=str(bucket),
            sku=str(sku),
            location_id=str(location),
            requested=int(requested),
            available=int(available),
        )
    if status == "receive_exceeds_shipped":
        sku, shipped, requested = str(rest[0]), int(rest[1]), int(rest[2])
        raise ReceiveExceedsShipped(
            f"transfer {subject!r} shipped {shipped} unit(s) of {sku!r}; a receipt of "
            f"{requested} exceeds it; nothing was changed",
            sku=sku,
            shipped=shipped,
            requested=requested,
        )
    if status == "too_many_arrivals":
        sku, location, limit = str(rest[0]), str(rest[1]), int(rest[2])
        raise TooManyArrivals(
            f"{location!r} already expects {limit} arrivals of {sku!r} (incoming supplies and "
            "transfers), the most a position may have; nothing was changed",
            sku=sku,
            location_id=location,
            limit=limit,
        )
    raise_for_refusal(reply, action=action, subject=subject)
