"""Reservations: holds (all lines or none), their transitions, and the reaping of due ones."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stocksync.domain.codes import new_hold_code
from stocksync.domain.errors import CrossDomain, IdempotencyConflict, NotFound
from stocksync.domain.model import (
    DEFAULT_DOMAIN,
    Line,
    PoolLine,
    PoolSource,
    Reservation,
    ReserveResult,
    State,
    normalize_lines,
    normalize_pool_lines,
    reservation_fingerprint,
)
from stocksync.store.outbox import OutboxEvent, decode_stored_events
from stocksync.store.replies import (
    field_pairs,
    optional_int,
    parse_reservation,
    parse_sources,
    raise_for_refusal,
)
from stocksync.store.routing import Routing
from stocksync.store.stale_routes import reroute, unknown_location

CODE_ATTEMPTS = 8  # a code is taken with odds (active holds / 31^7): one retry is already rare


@dataclass(frozen=True)
class ReapResult:
    expired: int
    lag_seconds: float
    active: int


@dataclass(frozen=True)
class TransitionResult:
    reservation: Reservation
    repeated: bool
    sale_events: tuple[OutboxEvent, ...] = ()  # a fulfilment's events, for the ledger


class Reservations(Routing):
    async def reserve(
        self,
        reservation_id: str,
        channel: str,
        lines: Sequence[Line | PoolLine],
        ttl_seconds: int,
        customer_ref: str | None = None,
        *,
        key_id: str | None = None,
        confirm: bool = False,
        pickup_seconds: int | None = None,
        near: tuple[float, float] | None = None,
        allow_split: bool = False,
    ) -> ReserveResult:
        """Hold every line or nothing; a retry with the same id and body replays the result.

        ``key_id`` (the caller's API key) counts the hold against the per-key caps (holds, and
        units per location). ``confirm``
        reserves and confirms in one script call (an order with no hold before it), with an
        optional pickup deadline.

        A :class:`PoolLine` names a channel pool instead of a location: the reserve script
        chooses its locations by the pool's strategy in the same atomic call as the hold
        (``near`` is the point of the ``nearest`` strategy; without ``allow_split`` all units of
        a line come from one location). The reservation's lines are then the chosen ones.
        """
        normalized = normalize_lines(ln for ln in lines if isinstance(ln, Line))
        pool_lines = normalize_pool_lines(ln for ln in lines if isinstance(ln, PoolLine))
        fp = reservation_fingerprint(
            channel, normalized, ttl_seconds, customer_ref, pool_lines, near, allow_split
        )
        if confirm:  # same id as a plain hold but another request: a conflict, not a replay
            fp += ":confirmed"
        lines_json = json.dumps([[ln.sku, ln.location_id, ln.qty] for ln in normalized])
        domain = await self._domain_of_request(normalized, pool_lines)
        args: tuple[str | int, ...] = (
            reservation_id,
            channel,
            ttl_seconds * 1000,
            fp,
            customer_ref or "",
            lines_json,
            key_id or "",
            self.settings.max_active_holds_per_key.get(channel, 0),
            self.settings.max_active_holds_per_customer,
            "1" if confirm else "",
            "" if pickup_seconds is None else pickup_seconds * 1000,
            self.settings.max_held_units_per_location_per_key.get(channel, 0) if key_id else 0,
        )
        if pool_lines:  # ARGV[16..19] of reserve.lua
            args += (
                json.dumps([[ln.sku, ln.pool, ln.qty] for ln in pool_lines]),
                "" if near is None else repr(float(near[0])),
                "" if near is None else repr(float(near[1])),
                "1" if allow_split else "",
            )
        # The directory's claim and the hold go out together (two slots, two batches in
        # flight at once; the hold is queued first, as a lone change would be), and the answer
        # waits for both: a claim that finds the id in another domain undoes a hold this call
        # created (released at once) before refusing.
        claim = asyncio.ensure_future(self.claim_reservation(reservation_id, domain))
        try:
            reply, code = await self._hold(domain, args)
        except BaseException:
            await asyncio.gather(claim, return_exceptions=True)
            raise
        try:
            await claim
        except IdempotencyConflict:
            if reply[0] == "ok" and int(reply[1]):
                await self.run("release", reservation_id, "", domain=domain)
            raise
        if unknown_location(reply) and normalized:  # a stale route: a location moved
            fresh = await reroute(self, (ln.location_id for ln in normalized), domain)
            if fresh is not None:
                await self._reclaim(reservation_id, fresh, domain)
                reply, code = await self._hold(fresh, args)
        raise_for_refusal(reply, action="reserve", subject=reservation_id)
        if not int(reply[1]):  # a retry of the same request: the stored reservation
            return ReserveResult(parse_reservation(reservation_id, field_pairs(reply[2:])), False)
        created_at, expires_at = int(reply[2]), optional_int(reply[3])
        sources: list[PoolSource] = []
        if len(reply) > 4:  # pool lines: the lines the script chose, and where each came from
            normalized = [Line(sku, loc, int(qty)) for sku, loc, qty in json.loads(reply[4])]
            sources = parse_sources(reply[5])
        history = [(State.HELD.value, created_at)]
        if confirm:
            history.append((State.CONFIRMED.value, created_at))
        reservation = Reservation(
            reservation_id=reservation_id,
            channel=channel,
            state=State.CONFIRMED if confirm else State.HELD,
            lines=normalized,
            created_at_ms=created_at,
            updated_at_ms=created_at,
            expires_at_ms=expires_at,
            customer_ref=customer_ref,
            history=history,
            hold_code=code,
            key_id=key_id,
            pool_sources=sources,
        )
        return ReserveResult(reservation, created=True)

    async def _domain_of_request(
        self, lines: Sequence[Line], pool_lines: Sequence[PoolLine]
    ) -> str:
        """The one domain of a reservation's locations and pools (a pool lives in the domain
        it was created in); :class:`NotFound` for a pool never created, :class:`CrossDomain`
        when they span domains."""
        if not pool_lines:
            return await self.domain_of_lines(lines)
        found: dict[str, list[str]] = {}
        for pool in dict.fromkeys(ln.pool for ln in pool_lines):
            domain = await self.domain_of_pool(pool)
            if domain is None:
                raise NotFound(f"unknown pool {pool!r}", resource="pool")
            found.setdefault(domain, []).append(f"pool {pool}")
        for location_id in dict.fromkeys(ln.location_id for ln in lines):
            found.setdefault(await self.domain_of_location(location_id), []).append(location_id)
        if len(found) > 1:
            raise CrossDomain(
                "the pools and locations are in different stock domains ("
                + "; ".join(f"{d}: {', '.join(names)}" for d, names in sorted(found.items()))
                + "); a reservation's lines must all be in one domain. Nothing was changed.",
                domains={d: sorted(names) for d, names in found.items()},
            )
        return next(iter(found))

    async def _reclaim(self, reservation_id: str, domain: str, stale: str) -> None:
        """Move the id's claim from ``stale`` (whose reserve answered unknown_location: no
        reservation of the id is there) to ``domain``."""
        held = str(await self.run_directory("claim_reservation", reservation_id, domain, stale))
        self._remember_reservation(reservation_id, held)
        if held != domain:
            raise IdempotencyConflict(
                f"reservation {reservation_id!r} already exists in stock domain {held!r}; "
                "the same id with other lines is another request"
            )

    async def _hold(self, domain: str, args: tuple[str | int, ...]) -> tuple[list[Any], str]:
        """The reserve script's reply (with a fresh hold code, again if the code was taken)
        and the code it was given."""
        for _ in range(CODE_ATTEMPTS):
            code = new_hold_code()
            reply: list[Any] = await self.run("reserve", *args[:6], code, *args[6:], domain=domain)
            if reply[0] != "code_taken":
                return reply, code
        raise RuntimeError(f"no free hold code after {CODE_ATTEMPTS} attempts")

    # Each transition takes the caller's ``access`` (reservation_access.access_spec): a
    # reservation the caller may not access is not found, checked in the same script call as
    # the change. '' (the default, for internal callers) allows every reservation.

    async def confirm(
        self, reservation_id: str, pickup_seconds: int | None = None, *, access: str = ""
    ) -> TransitionResult:
        pickup_ms = "" if pickup_seconds is None else pickup_seconds * 1000
        return await self._transition("confirm", reservation_id, pickup_ms, access)

    async def ready(self, reservation_id: str, *, access: str = "") -> TransitionResult:
        return await self._transition("ready", reservation_id, access)

    async def fulfill(
        self, reservation_id: str, occurred_at_ms: int | None = None, *, access: str = ""
    ) -> TransitionResult:
        """The units left; ``occurred_at_ms`` (a late till report) goes through the as-of rule."""
        occurred = "" if occurred_at_ms is None else occurred_at_ms
        return await self._transition("fulfill", reservation_id, occurred, access)

    async def release(self, reservation_id: str, *, access: str = "") -> TransitionResult:
        return await self._transition("release", reservation_id, access)

    async def extend(
        self, reservation_id: str, ttl_seconds: int, *, access: str = ""
    ) -> TransitionResult:
        return await self._transition("extend", reservation_id, ttl_seconds * 1000, access)

    async def _transition(
        self, action: str, reservation_id: str, *args: str | int
    ) -> TransitionResult:
        domain = await self.domain_of_reservation(reservation_id)
        if domain is None:
            raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
        reply = await self.run(action, reservation_id, *args, domain=domain)
        raise_for_refusal(reply, action=action, subject=reservation_id)
        fields = field_pairs(reply[2:])
        sale = decode_stored_events(self.keys_of(domain).ledger_namespace, fields.get("events", ""))
        return TransitionResult(
            parse_reservation(reservation_id, fields), bool(int(reply[1])), sale
        )

    async def erase_customer(self, customer_ref: str, reservation_ids: Sequence[str]) -> int:
        """Remove ``customer_ref`` from its reservations (active ones, and ``reservation_ids``
        the ledger knows); returns how many Redis reservations carried it."""
        grouped: dict[str, list[str]] = {domain: [] for domain in await self.domains()}
        for reservation_id in reservation_ids:
            domain = await self.domain_of_reservation(reservation_id)
            if domain is not None:
                grouped.setdefault(domain, []).append(reservation_id)
        erased = 0
        for domain, ids in grouped.items():
            reply = await self.run("erase_customer", customer_ref, *ids, domain=domain)
            erased += int(reply[1])
        return erased

    async def reap(self, limit: int = 16, *, domain: str = DEFAULT_DOMAIN) -> ReapResult:
        """Expire up to ``limit`` of a domain's reservations whose deadline passed."""
        expired, lag_ms, active = await self.run("expire", limit, domain=domain)
        return ReapResult(int(expired), int(lag_ms) / 1000, int(active))
