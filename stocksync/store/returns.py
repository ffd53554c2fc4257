"""Returns: units of a fulfilled reservation, or an unlinked till return, back at any location
of the reservation's stock domain, each line into the bucket its disposition names."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from stocksync.domain.errors import (
    CrossDomain,
    IdempotencyConflict,
    NotFound,
    NotFulfilled,
    ReturnExceedsFulfilled,
    ReturnWindowClosed,
    Unprocessable,
)
from stocksync.domain.model import Disposition
from stocksync.domain.returns import (
    ArchivedSale,
    ReturnLine,
    StockReturn,
    normalize_return_lines,
    return_fingerprint,
)
from stocksync.store.replies import raise_for_refusal
from stocksync.store.routing import Routing
from stocksync.store.stale_routes import reroute, unknown_location

# Looks a pruned reservation up in the ledger, among the ledger namespaces of every stock
# domain (the API passes one reading the SQL ledger; the store itself never reads it).
ArchiveLookup = Callable[[Sequence[str]], Awaitable[ArchivedSale | None]]


class Returns(Routing):
    """The store's returns."""

    async def record_return(
        self,
        return_id: str,
        lines: Sequence[ReturnLine],
        *,
        reservation_id: str | None = None,
        source: str = "api",
        access: str = "",
        archive: ArchiveLookup | None = None,
        occurred_at_ms: int | None = None,
    ) -> StockReturn:
        """Record a return in one script call, idempotent by ``return_id`` (the same return
        again is a replay, another one under the id :class:`IdempotencyConflict`).

        Linked (``reservation_id``): the reservation must be fulfilled and the caller may
        access it (``access``, see reservation_access.access_spec); the units returned of each
        SKU, over all its returns, never exceed the units it fulfilled. One Redis pruned is
        read through ``archive`` (the ledger). Its lines may be at any location of its stock
        domain (:class:`CrossDomain` otherwise). Unlinked: a till return, in one domain.

        ``occurred_at_ms``: when a source reporting late says the units came back (None: now);
        a restocked line's on_hand is a delta of that time for the as-of rule, and is not added
        again when a count taken at or after it was applied."""
        try:
            normalized = normalize_return_lines(lines)
        except ValueError as exc:
            raise Unprocessable(f"{exc}: a return names each (sku, location) once") from None
        if not normalized:
            raise Unprocessable("a return has at least one line")
        fp = return_fingerprint(reservation_id, normalized, source, occurred_at_ms)
        occurred = "" if occurred_at_ms is None else str(occurred_at_ms)
        lines_json = json.dumps(
            [[ln.sku, ln.location_id, ln.qty, ln.disposition.value] for ln in normalized]
        )
        args = (
            return_id,
            reservation_id or "",
            lines_json,
            fp,
            source,
            self.settings.return_retention_seconds,
            access,
        )
        locations = [ln.location_id for ln in normalized]
        if reservation_id is None:
            domain = await self.domain_of_locations(locations)
            reply = await self.run("return_stock", *args, "", occurred, domain=domain)
            if unknown_location(reply) and (fresh := await reroute(self, locations, domain)):
                reply = await self.run("return_stock", *args, "", occurred, domain=fresh)
        else:
            reply = await self._linked(reservation_id, locations, args, archive, occurred)
        return _stock_return(return_id, reservation_id, reply)

    async def _linked(
        self,
        reservation_id: str,
        locations: list[str],
        args: tuple[str | int, ...],
        archive: ArchiveLookup | None,
        occurred: str,
    ) -> list[Any]:
        """The script's reply for a linked return, in the reservation's domain; with the
        ledger's record of the reservation once Redis pruned it."""
        domain = await self.domain_of_reservation(reservation_id)
        fallback = ""
        if domain is None:  # pruned, and its directory claim swept: the ledger says where
            fallback, domain = await self._archived(reservation_id, archive)
        await self._all_in(domain, locations)
        reply: list[Any] = await self.run("return_stock", *args, fallback, occurred, domain=domain)
        if reply[0] == "reservation_gone":  # pruned; its claim not swept yet
            fallback, _ = await self._archived(reservation_id, archive)
            reply = await self.run("return_stock", *args, fallback, occurred, domain=domain)
        if unknown_location(reply):  # maybe a stale route: a location moved to another domain
            await self._all_in(domain, locations, fresh=True)
        return reply

    async def _archived(
        self, reservation_id: str, archive: ArchiveLookup | None
    ) -> tuple[str, str]:
        """The ledger's record of a pruned reservation as return_stock.lua's fallback, and its
        domain; :class:`NotFound` when the ledger does not have it either."""
        domains = {self.keys_of(d).ledger_namespace: d for d in await self.domains(fresh=True)}
        sale = None if archive is None else await archive(sorted(domains))
        if sale is None or sale.ledger_namespace not in domains:
            raise NotFound(f"reservation {reservation_id!r} not found", resource="reservation")
        fallback = {
            "state": sale.state,
            "lines": [[ln.sku, ln.location_id, ln.qty] for ln in sale.lines],
            "key": sale.owner_key_id or "",
            "fulfilled_at": sale.fulfilled_at_ms or 0,
        }
        return json.dumps(fallback), domains[sale.ledger_namespace]

    async def _all_in(self, domain: str, locations: Iterable[str], *, fresh: bool = False) -> None:
        """Raise :class:`CrossDomain` when a known location is in another domain than
        ``domain`` (an unknown one is left to the script: 404 unknown location)."""
        outside: dict[str, list[str]] = {}
        for location_id in dict.fromkeys(locations):
            if fresh:
                self.forget_location(location_id)
            held = await self.domain_of_location(location_id)
            if held != domain and await self.client.hexists(
                self.directory.location_domains, location_id
            ):
                outside.setdefault(held, []).append(location_id)
        if outside:
            raise CrossDomain(
                f"the reservation is in stock domain {domain!r}, the return's line(s) at "
                + "; ".join(f"{', '.join(locs)} in {d!r}" for d, locs in sorted(outside.items()))
                + "; a return comes back within its reservation's domain. Nothing was changed.",
                domains={domain: [], **{d: sorted(locs) for d, locs in outside.items()}},
            )

    async def get_return(self, return_id: str) -> StockReturn:
        """A recorded return (kept for the return retention); :class:`NotFound` otherwise.
        Return ids are looked up in every stock domain (one pipelined read)."""
        domains = await self.domains()
        async with self.client.pipeline(transaction=False) as pipe:
            for domain in domains:
                pipe.hmget(
                    self.keys_of(domain).stock_return(return_id),
                    ["reservation_id", "lines", "created_at"],
                )
            found = await pipe.execute()
        for reservation_id, lines_json, created_at in found:
            if lines_json is not None:
                return _parsed(return_id, str(reservation_id), str(lines_json), created_at)
        raise NotFound(f"return {return_id!r} not found", resource="return")

    async def returned_units(
        self, reservation_id: str, domain: str
    ) -> tuple[dict[str, int], tuple[str, ...]]:
        """Units of a reservation returned so far per SKU, and its return ids (oldest first),
        as get_reservation.lua adds them (for a reservation read from the ledger)."""
        raw: dict[str, str] = await self.client.hgetall(  # type: ignore[assignment]
            self.keys_of(domain).returned_units(reservation_id)
        )
        ids = raw.pop(":ids", "")
        return {sku: int(units) for sku, units in raw.items()}, tuple(filter(None, ids.split(",")))


def _parsed(
    return_id: str, reservation_id: str, lines_json: str, created_at: Any, replayed: bool = False
) -> StockReturn:
    return StockReturn(
        return_id=return_id,
        reservation_id=reservation_id or None,
        lines=[
            ReturnLine(str(sku), str(loc), int(qty), Disposition(disp))
            for sku, loc, qty, disp in json.loads(lines_json)
        ],
        created_at_ms=int(created_at),
        replayed=replayed,
    )


def _stock_return(return_id: str, reservation_id: str | None, reply: list[Any]) -> StockReturn:
    status, rest = reply[0], reply[1:]
    subject = f"reservation {reservation_id!r}"
    if status == "idempotency_conflict":
        raise IdempotencyConflict(
            f"return_id {return_id!r} was already used for another return; nothing was changed"
        )
    if status in ("not_found", "reservation_gone"):
        raise NotFound(f"{subject} not found", resource="reservation")
    if status == "reservation_not_fulfilled":
        raise NotFulfilled(
            f"{subject} is {rest[0]}: only units of a fulfilled reservation come back; "
            "nothing was changed",
            state=str(rest[0]),
        )
    if status == "return_window_closed":
        raise ReturnWindowClosed(
            f"{subject} was fulfilled longer ago than returns are kept on record, so its "
            "earlier returns are unknown; return the units unlinked. Nothing was changed",
            fulfilled_at_ms=int(rest[0]),
        )
    if status == "return_exceeds_fulfilled":
        sku, fulfilled, returned, requested = str(rest[0]), *(int(v) for v in rest[1:4])
        raise ReturnExceedsFulfilled(
            f"{subject} fulfilled {fulfilled} unit(s) of {sku!r}, {returned} came back "
            f"before: {requested} more would exceed it; nothing was changed",
            sku=sku,
            fulfilled=fulfilled,
            returned=returned,
            requested=requested,
        )
    raise_for_refusal(reply, action="return")
    return _parsed(return_id, str(rest[0]), str(rest[1]), rest[2], replayed=status == "replay")
