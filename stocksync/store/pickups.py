"""The store's pickup side: nearby stock, finding reservations by index, hold codes, moves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from stocksync.domain.codes import normalize_hold_code
from stocksync.domain.errors import CrossDomain, NotFound
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


def _index_order(reservation: Reservation) -> tuple[float, int, str]:
    """find_reservations.lua's order: deadline (none last), created_at, id."""
    deadline = reservation.expires_at_ms
    return (
        float("inf") if deadline is None else float(deadline),
        reservation.created_at_ms,
        reservation.reservation_id,
    )


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
        """The SKU's positions within ``radius_km`` of a point, nearest first (GEOSEARCH in
        each domain, merged)."""
        out = []
        for domain in await self.store.domains():
            flat = await self.store.run(
                "nearby",
                sku,
                repr(lon),
                repr(lat),
                repr(radius_km),
                int(pickup_only),
                domain=domain,
            )
            width = POSITION_ROW + 1  # a position row, then its distance
            for i in range(0, len(flat), width):
                position, location = parse_position_row(sku, flat[i : i + width], domain)
                distance = round(float(flat[i + width - 1]), 3)
                out.append(NearbyPosition(position, location, distance))
        out.sort(key=lambda found: (found.distance_km, found.location.location_id))
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
        ordered by deadline (none last), then created_at; due ones are expired first. A
        location's are in its domain; a customer's and the at-risk ones are read from every
        domain and merged."""
        if index == "loc":
            domains: Sequence[str] = [await self.store.domain_of_location(value)]
        else:
            domains = await self.store.domains()
        found: list[Reservation] = []
        for domain in domains:
            rows = await self.store.run(
                "find_reservations",
                index,
                value,
                limit,
                int(at_risk_only),
                *(s.value for s in states),
                domain=domain,
            )
            found += [parse_reservation(str(row[0]), field_pairs(row[1:])) for row in rows]
        if len(domains) > 1:
            found.sort(key=_index_order)
        return found[:limit]

    async def reservation_id_by_code(self, code: str) -> str | None:
        """The reservation a hold code (any case, dash optional) belongs to, if any."""
        normalized = normalize_hold_code(code)
        if normalized is None:
            return None
        for domain in await self.store.domains():
            found = await self.store.client.get(self.store.keys_of(domain).hold_code(normalized))
            if found is not None:
                return str(found)
        return None

    async def move(
        self, reservation_id: str, from_location: str, to_location: str, *, access: str = ""
    ) -> Reservation:
        """Move every line at ``from_location`` to ``to_location``, or nothing (409 when the
        target is short). ``access``: as for the store's transitions. Both locations must be
        in the reservation's domain (:class:`CrossDomain` otherwise, nothing moved)."""
        domain = await self.store.domain_of_reservation(reservation_id)
        if domain is None:
            raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
        target = await self.store.domain_of_locations([to_location])
        if target != domain:
            raise CrossDomain(
                f"{to_location!r} is in stock domain {target!r} and reservation "
                f"{reservation_id!r} in {domain!r}: a hold moves only within its domain. "
                "Nothing was moved; release it and reserve in the other domain instead.",
                domains={domain: [from_location], target: [to_location]},
            )
        reply: list[Any] = await self.store.run(
            "move", reservation_id, from_location, to_location, access, domain=domain
        )
        raise_for_refusal(reply, action="move", subject=reservation_id)
        return parse_reservation(reservation_id, field_pairs(reply[2:]))
