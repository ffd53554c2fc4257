"""Incoming supply at a position: a purchase order or an announced delivery, with the time it
is expected. It counts in *available by* that time (DESIGN "stock beyond the shelf"), never in
``available``; a receipt that names it (an adjustment, a transfer receipt) consumes it."""

from __future__ import annotations

from stocksync.domain.model import Arrival, ArrivalKind
from stocksync.domain.transfers import MAX_ARRIVALS
from stocksync.store.routing import Routing
from stocksync.store.stale_routes import reroute, unknown_location
from stocksync.store.transfer_replies import raise_for_transfer_refusal


class Supplies(Routing):
    """The store's incoming supply."""

    async def set_incoming(
        self, sku: str, location_id: str, supply_id: str, qty: int, expected_at_ms: int
    ) -> Arrival:
        """Create or replace the supply ``supply_id`` at a position (at most MAX_ARRIVALS
        arrivals per position: :class:`TooManyArrivals`)."""
        args = (sku, location_id, supply_id, qty, expected_at_ms, MAX_ARRIVALS)
        await self._supply_call("set_incoming", location_id, supply_id, args, action="set")
        return Arrival(ArrivalKind.SUPPLY, supply_id, qty, expected_at_ms)

    async def remove_incoming(self, sku: str, location_id: str, supply_id: str) -> bool:
        """Remove a supply from a position; False when the position has none of that id
        (:class:`NotFound` for an unknown location)."""
        args = (sku, location_id, supply_id)
        reply = await self._supply_call(
            "remove_incoming", location_id, supply_id, args, action="remove"
        )
        return reply[0] == "ok"

    async def _supply_call(
        self,
        script: str,
        location_id: str,
        supply_id: str,
        args: tuple[str | int, ...],
        *,
        action: str,
    ) -> list[object]:
        domain = await self.domain_of_location(location_id)
        reply: list[object] = await self.run(script, *args, domain=domain)
        if unknown_location(reply) and (fresh := await reroute(self, [location_id], domain)):
            reply = await self.run(script, *args, domain=fresh)  # the location moved
        if reply[0] != "not_found":
            raise_for_transfer_refusal(reply, action=action, subject=supply_id)
        return reply
