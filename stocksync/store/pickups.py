"""The store's pickup side: nearby stock, finding reservations by index, hold codes, moves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from stocksync.domain.codes import normalize_hold_code
from stocksync.domain.errors import (
    InsufficientStock,
    InvalidTransition,
    NotFound,
    ShortLine,
    Unprocessable,
)
from stocksync.domain.model import Location, Position, Reservation, State
from stocksync.store.redis_store import (
    RedisStockStore,
    field_pairs,
    parse_location,
    parse_reservation,
    raise_regressed,
)

Index = Literal["loc", "cust", "atrisk"]


@dataclass(frozen=True)
class NearbyPosition:
    position: Position
    location: Location
    distance_km: float


class PickupOps:
    """Reads and moves for store pickup, chat holds and re-sourcing (one script each)."""

    def __init__(self, store: RedisStockStore) -> None:
        self.store = store

    async def nearby(
        self, sku: str, lat: float, lon: float, radius_km: float, *, pickup_only: bool = False
    ) -> list[NearbyPosition]:
        """The SKU's positions within ``radius_km`` of a point, nearest first (GEOSEARCH)."""
        flat = await self.store._call(
            "nearby", sku, repr(lon), repr(lat), repr(radius_km), int(pickup_only)
        )
        out = []
        for i in range(0, len(flat), 11):
            loc, on_hand, reserved, safety, kind, name, lat_, lon_, pickup, ship, dist = flat[
                i : i + 11
            ]
            fields = {
                "kind": kind,
                "name": name,
                "lat": lat_,
                "lon": lon_,
                "pickup": pickup,
                "ship": ship,
            }
            out.append(
                NearbyPosition(
                    Position(sku, loc, int(on_hand), int(reserved), int(safety)),
                    parse_location(loc, fields),
                    round(float(dist), 3),
                )
            )
        return out

    async def find(
        self,
        index: Index,
        value: str = "",
        *,
        states: Sequence[State] = (),
        at_risk_only: bool = False,
        limit: int = 200,
    ) -> list[Reservation]:
        """Active reservations of an index (a location's, a customer's, the at-risk ones),
        ordered by deadline (none last), then created_at; due ones are expired first."""
        rows = await self.store._call(
            "find_reservations",
            index,
            value,
            limit,
            int(at_risk_only),
            *(s.value for s in states),
        )
        return [parse_reservation(str(row[0]), field_pairs(row[1:])) for row in rows]

    async def reservation_id_by_code(self, code: str) -> str | None:
        """The reservation a hold code (any case, dash optional) belongs to, if any."""
        normalized = normalize_hold_code(code)
        if normalized is None:
            return None
        found = await self.store.client.get(self.store.keys.hold_code(normalized))
        return None if found is None else str(found)

    async def move(self, reservation_id: str, from_location: str, to_location: str) -> Reservation:
        """Move every line at ``from_location`` to ``to_location``, or nothing (409 when the
        target is short)."""
        reply: list[Any] = await self.store._call(
            "move", reservation_id, from_location, to_location
        )
        raise_regressed(reply)
        status = reply[0]
        if status == "ok":
            return parse_reservation(reservation_id, field_pairs(reply[2:]))
        if status == "not_found":
            raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
        if status == "invalid_transition":
            raise InvalidTransition(
                f"cannot move a reservation that is {reply[1]}", state=reply[1], action="move"
            )
        if status == "unknown_location":
            raise NotFound(f"unknown location {reply[1]!r}", resource="location")
        if status == "no_lines":
            raise Unprocessable(f"reservation {reservation_id!r} has no line at {reply[1]!r}")
        if status == "insufficient_stock":
            rest = reply[1:]
            raise InsufficientStock(
                [
                    ShortLine(rest[i], rest[i + 1], int(rest[i + 2]), int(rest[i + 3]))
                    for i in range(0, len(rest), 4)
                ],
                action="moved",
            )
        raise RuntimeError(f"unexpected reply from move: {reply!r}")
