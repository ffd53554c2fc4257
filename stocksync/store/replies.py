"""Script replies into domain values and domain errors, decoded in one place.

Every script answers ``{status, ...}``. A success status (``ok``, ``replay``) carries the
operation's values; every other status is one of the refusals below, decoded by
:func:`raise_for_refusal` into the domain error the API and connectors understand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stocksync.domain.errors import (
    DomainMoving,
    HoldLimitReached,
    IdempotencyConflict,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    OnHandMismatch,
    ShortLine,
    StockRegressed,
    Unprocessable,
)
from stocksync.domain.model import (
    DEFAULT_DOMAIN,
    Arrival,
    ArrivalKind,
    Line,
    Location,
    PoolSource,
    Position,
    Reservation,
    State,
)

SUCCESS = frozenset({"ok", "replay"})


def raise_for_refusal(reply: Sequence[Any], *, action: str, subject: str = "") -> None:
    """Raise the domain error of a refusal reply; return for a success.

    ``action`` names what was attempted (``reserve``, ``confirm``, ``count``, ``move`` …) and
    ``subject`` what it was attempted on (a reservation id), for the error's message.
    """
    status = reply[0] if reply else "empty"
    if status in SUCCESS:
        return
    rest = reply[1:]
    if status == "stock_regressed":
        raise StockRegressed(
            f"stock of {rest[0]!r} in Redis is older than the ledger; writes are refused "
            "until `stocksync rebuild` repairs it",
            sku=rest[0],
        )
    if status == "unknown_location":
        names = ", ".join(repr(loc) for loc in sorted(set(rest)))
        raise NotFound(f"unknown location {names}", resource="location")
    if status == "location_moving":
        raise DomainMoving(
            f"location {rest[0]!r} is moving to another stock domain; retry once the move is done"
        )
    if status == "invalid_coordinates":
        raise Unprocessable(
            f"coordinates lat={rest[0]!r} lon={rest[1]!r} are outside Redis GEO's range "
            "(lat within ±85.05112878, lon within ±180); nothing was changed"
        )
    if status == "not_found":
        raise NotFound(f"reservation {subject!r} not found", resource="reservation")
    if status == "invalid_transition":
        raise InvalidTransition(
            f"cannot {action} a reservation that is {rest[0]}", state=rest[0], action=action
        )
    if status == "idempotency_conflict":
        what = f"reservation {subject!r}" if subject else "source_event_id"
        raise IdempotencyConflict(f"{what} was already used for a different request")
    if status == "on_hand_mismatch":
        raise OnHandMismatch(f"on_hand is {rest[0]}, not the expected value", on_hand=int(rest[0]))
    if status == "insufficient_stock":
        raise InsufficientStock(
            [short_line(rest[i : i + 4]) for i in range(0, len(rest), 4)],
            action="moved" if action == "move" else "reserved",
        )
    if status == "unknown_pool":
        raise NotFound(f"unknown pool {rest[0]!r}", resource="pool")
    if status == "near_required":
        raise Unprocessable(
            f"pool {rest[0]!r} sources by distance (strategy nearest): the reservation needs "
            "near {lat, lon}; nothing was reserved"
        )
    if status == "pool_channel":
        raise Unprocessable(
            f"pool {rest[0]!r} does not sell on channel {rest[1]!r}; nothing was reserved"
        )
    if status == "hold_limit_reached" and rest[0] == "units":
        limit, location = int(rest[1]), str(rest[2])
        raise HoldLimitReached(
            f"this key may hold at most {limit} units at {location!r} on this channel; "
            f"nothing was {'moved' if action == 'move' else 'reserved'}",
            limit=limit,
            scope="units",
            location_id=location,
        )
    if status == "hold_limit_reached":
        scope, limit = str(rest[0]), int(rest[1])
        raise HoldLimitReached(
            f"this {scope} already has {limit} active holds; nothing was reserved",
            limit=limit,
            scope=scope,
        )
    if status == "no_lines":
        raise Unprocessable(f"reservation {subject!r} has no line at {rest[0]!r}")
    raise RuntimeError(f"unexpected reply from {action}: {list(reply)!r}")


POOL_MARK = "pool:"  # reserve.lua's short pool line names "pool:<id>" where a location goes


def short_line(row: Sequence[Any]) -> ShortLine:
    """One short line of an insufficient_stock reply: sku, location (or pool), requested,
    available."""
    sku, where, requested, available = (str(row[0]), str(row[1]), int(row[2]), int(row[3]))
    if where.startswith(POOL_MARK):  # no location id has a colon
        return ShortLine(sku, None, requested, available, pool=where[len(POOL_MARK) :])
    return ShortLine(sku, where, requested, available)


def field_pairs(flat: Sequence[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


def optional_int(value: str | None) -> int | None:
    return int(value) if value not in (None, "", "inf") else None


_STATE_RANK = {state.value: rank for rank, state in enumerate(State)}


def parse_reservation(reservation_id: str, fields: dict[str, str]) -> Reservation:
    # By time, then in the states' order: two transitions in one millisecond (confirm, then
    # ready) would otherwise come in the hash's field order, which Redis does not promise.
    history = sorted(
        ((k[2:], int(v)) for k, v in fields.items() if k.startswith("h:")),
        key=lambda h: (h[1], _STATE_RANK.get(h[0], len(_STATE_RANK))),
    )
    return Reservation(
        reservation_id=reservation_id,
        channel=fields["channel"],
        state=State(fields["state"]),
        lines=[Line(sku, loc, int(qty)) for sku, loc, qty in json.loads(fields["lines"])],
        created_at_ms=int(fields["created_at"]),
        updated_at_ms=int(fields["updated_at"]),
        expires_at_ms=optional_int(fields.get("expires_at")),
        customer_ref=fields.get("customer_ref") or None,
        at_risk=fields.get("at_risk") == "1",
        history=history,
        hold_code=fields.get("code") or None,
        key_id=fields.get("key") or None,
        pool_sources=parse_sources(fields.get("sources", "")),
        returned_units={
            sku: int(units) for sku, units in json.loads(fields.get("returned") or "{}").items()
        },
        return_ids=tuple(filter(None, fields.get("return_ids", "").split(","))),
    )


def parse_sources(text: str) -> list[PoolSource]:
    """reserve.lua's sources (JSON ``[[sku, pool, location, qty], ...]``; '' = none)."""
    if not text:
        return []
    return [PoolSource(sku, pool, loc, int(qty)) for sku, pool, loc, qty in json.loads(text)]


def parse_location(location_id: str, f: dict[str, str], domain: str = DEFAULT_DOMAIN) -> Location:
    return Location(
        location_id=location_id,
        name=f.get("name", ""),
        kind=f.get("kind", "store"),
        lat=float(f["lat"]) if f.get("lat") else None,
        lon=float(f["lon"]) if f.get("lon") else None,
        pickup=f.get("pickup") == "1",
        ship=f.get("ship") == "1",
        domain=domain,
    )


# position_row in _lib.lua: location, on_hand, reserved, safety, the location's six fields, then
# damaged, quality_control, in_transit and the arrivals text.
POSITION_ROW = 14


def parse_arrivals(text: str) -> tuple[Arrival, ...]:
    """_lib.lua's arrivals_text: ``<s|t>:<id>|<qty>|<expected ms or empty>`` joined by ``;``."""
    if not text:
        return ()
    out = []
    for part in text.split(";"):
        name, qty, expected = part.rsplit("|", 2)
        kind, _, ident = name.partition(":")
        out.append(
            Arrival(
                ArrivalKind.SUPPLY if kind == "s" else ArrivalKind.TRANSFER,
                ident,
                int(qty),
                int(expected) if expected else None,
            )
        )
    return tuple(out)


def parse_position_row(
    sku: str, row: Sequence[Any], domain: str = DEFAULT_DOMAIN
) -> tuple[Position, Location]:
    """One row of read_positions.lua or nearby.lua (which adds a distance after it), read
    from ``domain``."""
    loc, on_hand, reserved, safety, kind, name, lat, lon, pickup, ship = row[:10]
    damaged, quality_control, in_transit, arrivals = row[10:POSITION_ROW]
    fields = {"kind": kind, "name": name, "lat": lat, "lon": lon, "pickup": pickup, "ship": ship}
    position = Position(
        sku,
        loc,
        int(on_hand),
        int(reserved),
        int(safety),
        damaged=int(damaged),
        quality_control=int(quality_control),
        in_transit=int(in_transit),
        arrivals=parse_arrivals(arrivals),
    )
    return position, parse_location(loc, fields, domain)
