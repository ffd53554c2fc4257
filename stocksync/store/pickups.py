"""The store's pickup side: nearby stock, finding reservations by index, hold codes, moves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from stocksync.domain.codes import normalize_hold_code
from stocksync.domain.model import Location, Position, Reservation, State
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.replies import (
    POSITION_ROW,
    field_pairs,
    parse_position_row,
    parse_reservation,
    raise_for_refusal,
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
        flat = await self.store.run(
            "nearby", sku, repr(lon), repr(lat), repr(radius_km), int(pickup_only)
        )
        width = POSITION_ROW + 1  # a position row, then its distance
        out = []
        for i in range(0, len(flat), width):
            position, location = parse_position_row(sku, flat[i : i + width])
            out.append(NearbyPosition(position, location, round(float(flat[i + width - 1]), 3)))
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
        rows = await self.store.run(
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

    async def move(
        self, reservation_id: str, from_location: str, to_location: str, *, access: str = ""
    ) -> Reservation:
        """Move every line at ``from_location`` to ``to_location``, or nothing (409 when the
        target is short). ``access``: as for the store's transitions."""
        reply: list[Any] = await self.store.run(
            "move", reservation_id, from_location, to_location, access
        )
        raise_for_refusal(reply, action="move", subject=reservation_id)
        return parse_reservation(reservation_id, field_pairs(reply[2:]))
