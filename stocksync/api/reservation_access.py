"""Who may see a reservation, and reading it from Redis or, once pruned, from the ledger."""

from __future__ import annotations

import anyio.to_thread

from stocksync.api.convert import ledger_reservation_out, reservation_out
from stocksync.api.deps import Services
from stocksync.api.schemas import ReservationOut
from stocksync.auth.principal import Principal
from stocksync.domain.errors import NotFound
from stocksync.ledger.history import reservation_record


async def authorize(svc: Services, principal: Principal, reservation_id: str) -> None:
    """A key bound to locations may only touch reservations at those locations."""
    if principal.locations is None:
        return
    locations = await svc.store.reservation_locations(reservation_id)
    if locations is None:
        raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
    principal.require_locations(locations)


async def read_reservation(
    svc: Services, principal: Principal, reservation_id: str
) -> ReservationOut:
    """A reservation from Redis, or from the ledger once Redis has pruned it."""
    try:
        await authorize(svc, principal, reservation_id)
        return reservation_out(await svc.store.get_reservation(reservation_id))
    except NotFound:
        # Redis prunes terminal reservations after the retention period; the ledger keeps them.
        record = await anyio.to_thread.run_sync(
            reservation_record, svc.engine, svc.settings.namespace, reservation_id
        )
        if record is None:
            raise
        out = ledger_reservation_out(*record)
        principal.require_locations(line.location_id for line in out.lines)
        return out
