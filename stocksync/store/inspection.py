"""The inspection queue: a location's positions with units in quality_control.

Returned units awaiting inspection (a return's ``inspect`` disposition) sit in the position's
``quality_control`` bucket until staff move them to ``on_hand`` or ``damaged``. Positions are
not indexed by location, so the scripts keep one index per location (``qcloc:<location>``,
see :meth:`stocksync.store.keys.Keys.quality_control_positions`) from the after-values their
bucket events carry; ``inspection_queue.lua`` reads it a bounded page at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from stocksync.domain.model import Position
from stocksync.store.replies import POSITION_ROW, parse_position_row, raise_for_refusal
from stocksync.store.routing import Routing
from stocksync.store.stale_routes import reroute, unknown_location

QUEUE_ROW = POSITION_ROW + 2  # the SKU, its position, when its units entered quality_control


@dataclass(frozen=True)
class Waiting:
    """A position with units awaiting inspection, and since when (ms, Redis time)."""

    position: Position
    since_ms: int


@dataclass(frozen=True)
class InspectionQueue:
    location_id: str
    waiting: int  # positions waiting in all (the page may show fewer)
    positions: list[Waiting]


class Inspection(Routing):
    async def inspection_queue(self, location_id: str, *, limit: int) -> InspectionQueue:
        """Up to ``limit`` positions of the location with units in quality_control, longest
        waiting first; NotFound for an unknown location."""
        domain = await self.domain_of_location(location_id)
        reply = await self.run("inspection_queue", location_id, limit, domain=domain)
        if unknown_location(reply):
            retry = await reroute(self, [location_id], domain)
            if retry is not None:
                domain = retry
                reply = await self.run("inspection_queue", location_id, limit, domain=domain)
        raise_for_refusal(reply, action="read the inspection queue")
        rows = reply[2:]
        found = []
        for i in range(0, len(rows), QUEUE_ROW):
            row = rows[i : i + QUEUE_ROW]
            position, _ = parse_position_row(str(row[0]), row[1 : POSITION_ROW + 1], domain)
            found.append(Waiting(position, int(float(row[POSITION_ROW + 1]))))
        return InspectionQueue(location_id, int(reply[1]), found)
