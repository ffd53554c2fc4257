"""What the store answers without changing anything: locations, positions, reservations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from stocksync.domain.errors import NotFound
from stocksync.domain.model import Location, Position, Reservation
from stocksync.store.replies import (
    POSITION_ROW,
    field_pairs,
    parse_location,
    parse_position_row,
    parse_reservation,
)
from stocksync.store.routing import Routing


@dataclass(frozen=True)
class ReservationFacts:
    channel: str
    key_id: str | None
    locations: frozenset[str]


class StoreReads(Routing):
    async def list_locations(self) -> list[Location]:
        """All locations of every domain, sorted by id."""
        found: list[Location] = []
        for domain in await self.domains():
            found += await self._domain_locations(domain)
        return sorted(found, key=lambda location: location.location_id)

    async def _domain_locations(self, domain: str) -> list[Location]:
        keys = self.keys_of(domain)
        ids: list[str] = sorted(await self.client.smembers(keys.locations))  # type: ignore[arg-type]
        async with self.client.pipeline(transaction=False) as pipe:
            for location_id in ids:
                pipe.hgetall(keys.location(location_id))
            rows = await pipe.execute()
        return [parse_location(i, row, domain) for i, row in zip(ids, rows, strict=True) if row]

    async def get_location(self, location_id: str) -> Location | None:
        domain = await self.domain_of_location(location_id)
        key = self.keys_of(domain).location(location_id)
        fields: dict[str, str] = await self.client.hgetall(key)  # type: ignore[assignment]
        return parse_location(location_id, fields, domain) if fields else None

    async def positions(
        self, sku: str, location_ids: Sequence[str] = ()
    ) -> list[tuple[Position, Location]]:
        """Positions of a SKU with their locations (all known locations of every domain if
        none are named), in the order of ``location_ids``; one script call per domain."""
        if location_ids:
            grouped = await self.group_by_domain(location_ids)
        else:
            grouped = {domain: [] for domain in await self.domains()}
        found: list[tuple[Position, Location]] = []
        for domain, ids in grouped.items():
            flat = await self.run("read_positions", sku, *ids, domain=domain)
            found += [
                parse_position_row(sku, flat[i : i + POSITION_ROW], domain)
                for i in range(0, len(flat), POSITION_ROW)
            ]
        if location_ids and len(grouped) > 1:
            order = {location_id: i for i, location_id in enumerate(location_ids)}
            found.sort(key=lambda row: order[row[0].location_id])
        return found

    async def position(self, sku: str, location_id: str) -> Position:
        found = await self.positions(sku, [location_id])
        if not found:
            raise NotFound(f"unknown location {location_id!r}", resource="location")
        return found[0][0]

    async def get_reservation(self, reservation_id: str) -> Reservation:
        domain = await self.domain_of_reservation(reservation_id)
        flat = []
        if domain is not None:
            flat = await self.run("get_reservation", reservation_id, domain=domain)
        if not flat:
            raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
        return parse_reservation(reservation_id, field_pairs(flat))

    async def reservation_facts(self, reservation_id: str) -> ReservationFacts | None:
        """Who made a reservation, where, on which channel (a plain read, for access and TTL
        checks before a script call); None when unknown."""
        domain = await self.domain_of_reservation(reservation_id)
        if domain is None:
            return None
        channel, key_id, lines = await self.client.hmget(
            self.keys_of(domain).reservation(reservation_id), ["channel", "key", "lines"]
        )
        if lines is None:
            return None
        locations = frozenset(loc for _, loc, _ in json.loads(lines))
        return ReservationFacts(str(channel or ""), str(key_id) if key_id else None, locations)
