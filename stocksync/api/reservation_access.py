"""Who may see and act on a reservation, and reading it from Redis or, once pruned, the ledger.

The rule, for every reservation route (get, transitions, move, hold codes, listings): a key may
see and act on a reservation if it created it, if it has the ``admin`` scope, or if it is bound
to locations that include every location of the reservation (the staff of that store). Any
other key is told the reservation does not exist (404, never 403), so ids cannot be probed.

Reads apply :func:`may_access` to what they read; changes pass :func:`access_spec` to their
script, which applies the same rule (``may_access`` in ``lua/_lib.lua``) in the same call as
the change, so no extra Redis round trip and no gap between the check and the write.
"""

from __future__ import annotations

from collections.abc import Iterable

import anyio.to_thread

from stocksync.api.convert import ledger_reservation_out, reservation_out
from stocksync.api.deps import Services
from stocksync.api.schemas import ReservationOut
from stocksync.auth.principal import Principal
from stocksync.domain.errors import NotFound
from stocksync.domain.model import DEFAULT_DOMAIN, Reservation
from stocksync.ledger.history import reservation_record


def may_access(principal: Principal, owner_key_id: str | None, locations: Iterable[str]) -> bool:
    """The rule of this module's docstring."""
    if "admin" in principal.scopes:
        return True
    if owner_key_id is not None and owner_key_id == principal.key_id:
        return True
    return principal.locations is not None and set(locations) <= principal.locations


def access_spec(principal: Principal) -> str:
    """The principal as the scripts' ``access`` argument: '' for admin (any reservation), else
    '<key_id> <bound locations, comma-separated>' (nothing after the space: not bound)."""
    if "admin" in principal.scopes:
        return ""
    return f"{principal.key_id} {','.join(sorted(principal.locations or ()))}"


def not_found(reservation_id: str) -> NotFound:
    return NotFound(f"reservation {reservation_id!r} not found", resource="reservation")


def visible(principal: Principal, reservations: Iterable[Reservation]) -> list[Reservation]:
    """The reservations of a listing that the principal may see."""
    return [
        r
        for r in reservations
        if may_access(principal, r.key_id, (ln.location_id for ln in r.lines))
    ]


async def authorize(svc: Services, principal: Principal, reservation_id: str) -> str:
    """Check access before a change that needs the reservation's channel (its TTL policy);
    returns the channel. The change's script checks again, atomically."""
    facts = await svc.store.reservation_facts(reservation_id)
    if facts is None or not may_access(principal, facts.key_id, facts.locations):
        raise not_found(reservation_id)
    return facts.channel


async def load_reservation(svc: Services, reservation_id: str) -> tuple[ReservationOut, str | None]:
    """A reservation from Redis, or from the ledger once Redis has pruned it, and the key id
    that made it; no access check (callers apply the rule of this module, or another one)."""
    try:
        reservation = await svc.store.get_reservation(reservation_id)
    except NotFound:
        # Redis prunes terminal reservations after the retention period; the ledger keeps them.
        record = await anyio.to_thread.run_sync(
            reservation_record, svc.engine, svc.settings.namespace, reservation_id
        )
        if record is None:
            raise not_found(reservation_id) from None
        row, transitions, hold_code, owner = record
        out = ledger_reservation_out(row, transitions, hold_code)
        # Its returns outlive it in Redis (the return retention); the ledger read above is the
        # default domain's (settings.namespace), and so are they.
        units, ids = await svc.store.returned_units(reservation_id, DEFAULT_DOMAIN)
        return out.model_copy(update={"returned_units": units, "return_ids": list(ids)}), owner
    return reservation_out(reservation), reservation.key_id


async def read_reservation(
    svc: Services, principal: Principal, reservation_id: str
) -> ReservationOut:
    """A reservation from Redis, or from the ledger once Redis has pruned it."""
    out, owner = await load_reservation(svc, reservation_id)
    if not may_access(principal, owner, (line.location_id for line in out.lines)):
        raise not_found(reservation_id)
    return out
