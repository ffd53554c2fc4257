"""What the store answers without changing anything: locations, positions, reservations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from stocksync.domain.errors import NotFound
from stocksync.domain.model import Location, Position, Reservation
from stocksync.store.base import ScriptStore
from stocksync.store.replies import (
    POSITION_ROW,
    field_pairs,
    parse_location,
    parse_position_row,
    parse_reservation,
)


@dataclass(frozen=True)
class ReservationFacts:
    channel: str
    key_id: str | None
    locations: frozenset[str]


class StoreReads(ScriptStore):
    async def list_locations(self) -> list[Location]:
        """All locations, sorted by id."""
        ids: list[str] = sorted(await self.client.smembers(self.keys.locations))  # type: ignore[arg-type]
        async with self.client.pipeline(transaction=False) as pipe:
            for location_id in ids:
                pipe.hgetall(self.keys.location(location_id))
            rows = await pipe.execute()
        return [parse_location(i, row) for i, row in zip(ids, rows, strict=True) if row]

    async def get_location(self, location_id: str) -> Location | None:
        fields: dict[str, str] = await self.client.hgetall(self.keys.location(location_id))  # type: ignore[assignment]
        return parse_location(location_id, fields) if fields else None

    async def positions(
        self, sku: str, location_ids: Sequence[str] = ()
    ) -> list[tuple[Position, Location]]:
        """Positions of a SKU with their locations (all known locations if none are named)."""
        flat = await self.run("read_positions", sku, *location_ids)
        return [
            parse_position_row(sku, flat[i : i + POSITION_ROW])
            for i in range(0, len(flat), POSITION_ROW)
        ]

    async def position(self, sku: str, location_id: str) -> Position:
        found = await self.positions(sku, [location_id])
        if not found:
            raise NotFound(f"unknown location {location_id!r}", resource="location")
        return found[0][0]

    async def get_reservation(self, reservation_id: str) -> Reservation:
        flat = await self.run("get_reservation", reservation_id)
        if not flat:
            raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
        return parse_reservation(reservation_id, field_pairs(flat))

    async def reservation_facts(self, reservation_id: str) -> ReservationFacts | None:
        """Who made a reservation, where, on which channel (a plain read, for access and TTL
        checks before a script call); None when unknown."""
        channel, key_id, lines = await self.client.hmget(
            self.keys.reservation(reservation_id), ["channel", "key", "lines"]
        )
        if lines is None:
            return None
        locations = frozenset(loc for _, loc, _ in json.loads(lines))
        return ReservationFacts(str(channel or ""), str(key_id) if key_id else None, locations)
