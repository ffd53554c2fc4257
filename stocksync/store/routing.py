"""Which stock domain a request goes to (DESIGN rule 2).

A location's domain and a reservation's domain are written once in the namespace's directory
(:class:`stocksync.store.keys.Directory`) and cached in each process, so routing costs no round
trip on the hot path once a process has seen the location or the reservation:

- a location's domain is set when it is created (``upsert_location``) and changes only offline
  (``stocksync domains move-location``, refused while the location has active holds); a
  location the directory does not know is routed to ``default`` (whose script then answers
  "unknown location", as before domains existed);
- a reservation id is claimed for its domain by its first reserve (``claim_reservation``,
  batched like every change, sent beside the hold); a reserve of the same id in another domain
  is an ``idempotency_conflict``; transitions find the domain by the claim, and a hold whose
  claim was lost (a crash between the two) is found in its domain and claimed again;
- a pool's domain is set when it is created and never changes.

The caches are bounded; a stale location entry (a location moved by the offline command while a
process ran) is corrected on the "unknown location" answer it causes
(:mod:`stocksync.store.stale_routes`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from stocksync.domain.errors import CrossDomain, IdempotencyConflict
from stocksync.domain.model import DEFAULT_DOMAIN, Line
from stocksync.store.base import ScriptStore

LOCATIONS_CACHED = 65_536  # location -> domain entries per process (a chain has far fewer)
RESERVATIONS_CACHED = 65_536  # reservation id -> domain entries per process (LRU)
DOMAINS_TTL_SECONDS = 5.0  # how stale this process's list of domains may be for fan-out reads


class Routing(ScriptStore):
    """Routes operations to stock domains; the base of every part of the store."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._location_domains: dict[str, str] = {}
        self._pool_domains: dict[str, str] = {}
        self._reservation_domains: OrderedDict[str, str] = OrderedDict()
        self._domains_read: tuple[float, tuple[str, ...]] = (float("-inf"), (DEFAULT_DOMAIN,))

    # -- domains ---------------------------------------------------------------------------

    async def domains(self, *, fresh: bool = False) -> tuple[str, ...]:
        """Every domain of the namespace, sorted (``default`` always among them); read again
        after DOMAINS_TTL_SECONDS or when ``fresh``."""
        read_at, found = self._domains_read
        if fresh or time.monotonic() - read_at > DOMAINS_TTL_SECONDS:
            members = await self.client.smembers(self.directory.domains)
            found = tuple(sorted({DEFAULT_DOMAIN, *map(str, members)}))
            self._domains_read = (time.monotonic(), found)
        return found

    # -- locations -------------------------------------------------------------------------

    async def domain_of_location(self, location_id: str) -> str:
        """The location's domain (``default`` when the directory does not know it)."""
        found = self._location_domains.get(location_id)
        if found is None:
            held = await self.client.hget(self.directory.location_domains, location_id)
            if held is None:
                return DEFAULT_DOMAIN
            found = str(held)
            self._remember_location(location_id, found)
        return found

    def _remember_location(self, location_id: str, domain: str) -> None:
        if len(self._location_domains) >= LOCATIONS_CACHED:
            self._location_domains.clear()
        self._location_domains[location_id] = domain
        self._note_domain(domain)

    def _note_domain(self, domain: str) -> None:
        """A domain this process just saw (created a location in, or routed to) is in its
        list at once; other processes see a new domain within DOMAINS_TTL_SECONDS."""
        read_at, found = self._domains_read
        if domain not in found:
            self._domains_read = (read_at, tuple(sorted({*found, domain})))

    def forget_location(self, location_id: str) -> None:
        """Drop a cached location (after an answer showed the cache stale)."""
        self._location_domains.pop(location_id, None)

    async def domain_of_locations(self, location_ids: Iterable[str]) -> str:
        """The one domain of all ``location_ids``; :class:`CrossDomain` when they span more."""
        found: dict[str, list[str]] = {}
        for location_id in dict.fromkeys(location_ids):
            found.setdefault(await self.domain_of_location(location_id), []).append(location_id)
        if len(found) > 1:
            raise CrossDomain(
                "the locations are in different stock domains ("
                + "; ".join(f"{d}: {', '.join(locs)}" for d, locs in sorted(found.items()))
                + "); a reservation's lines must all be in one domain. Nothing was changed.",
                domains={d: sorted(locs) for d, locs in found.items()},
            )
        return next(iter(found), DEFAULT_DOMAIN)

    async def domain_of_lines(self, lines: Sequence[Line]) -> str:
        return await self.domain_of_locations(line.location_id for line in lines)

    async def group_by_domain(self, location_ids: Iterable[str]) -> dict[str, list[str]]:
        """``location_ids`` grouped by their domains, order kept within each."""
        grouped: dict[str, list[str]] = {}
        for location_id in location_ids:
            grouped.setdefault(await self.domain_of_location(location_id), []).append(location_id)
        return grouped

    async def register_location(self, location_id: str, domain: str) -> str:
        """Record a location's domain in the directory unless it has one; returns the domain
        it has (``domain`` when this call set it)."""
        self.keys_of(domain)  # validates the name before anything is written
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hsetnx(self.directory.location_domains, location_id, domain)
            pipe.hget(self.directory.location_domains, location_id)
            pipe.sadd(self.directory.domains, domain)
            _, held, _ = await pipe.execute()
        self._remember_location(location_id, str(held))
        return str(held)

    # -- channel pools -----------------------------------------------------------------------

    async def domain_of_pool(self, pool_id: str) -> str | None:
        """A pool's domain; None when no pool of that id was created. Cached per process (a
        pool keeps its domain for life)."""
        found = self._pool_domains.get(pool_id)
        if found is None:
            held = await self.client.hget(self.directory.pool_domains, pool_id)
            if held is None:
                return None
            found = str(held)
            if len(self._pool_domains) >= LOCATIONS_CACHED:
                self._pool_domains.clear()
            self._pool_domains[pool_id] = found
        return found

    async def register_pool(self, pool_id: str, domain: str) -> str:
        """Record a pool's domain in the directory unless it has one; returns the domain it
        has (``domain`` when this call set it)."""
        self.keys_of(domain)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hsetnx(self.directory.pool_domains, pool_id, domain)
            pipe.hget(self.directory.pool_domains, pool_id)
            pipe.sadd(self.directory.domains, domain)
            _, held, _ = await pipe.execute()
        self._pool_domains[pool_id] = str(held)
        self._note_domain(str(held))
        return str(held)

    # -- reservations ----------------------------------------------------------------------

    async def claim_reservation(self, reservation_id: str, domain: str) -> None:
        """Claim ``reservation_id`` for ``domain`` in the directory (once per id); raises
        :class:`IdempotencyConflict` when another domain holds it."""
        held = self._reservation_domains.get(reservation_id)
        if held is None:
            held = str(await self.run_directory("claim_reservation", reservation_id, domain))
            self._remember_reservation(reservation_id, held)
        if held != domain:
            raise IdempotencyConflict(
                f"reservation {reservation_id!r} already exists in stock domain {held!r}; "
                "the same id with other lines is another request"
            )

    async def domain_of_reservation(self, reservation_id: str) -> str | None:
        """The domain that holds a reservation; None when there is none of that id."""
        held = self._reservation_domains.get(reservation_id)
        if held is not None:
            self._reservation_domains.move_to_end(reservation_id)
            return held
        value = await self.client.hget(self.directory.reservation_domains, reservation_id)
        if value is None:
            return await self._unclaimed_reservation(reservation_id)
        domain = str(value).partition("|")[0]
        self._remember_reservation(reservation_id, domain)
        return domain

    async def _unclaimed_reservation(self, reservation_id: str) -> str | None:
        """A reservation the directory does not know: its hold was applied but its claim was
        lost (the process or the directory's node died between the two, which go out
        together) — or there is none. Look in every domain (one EXISTS each, pipelined) and
        claim it where it is, so it is routed from then on; None when no domain has it."""
        domains = await self.domains()
        async with self.client.pipeline(transaction=False) as pipe:
            for domain in domains:
                pipe.exists(self.keys_of(domain).reservation(reservation_id))
            found = [d for d, n in zip(domains, await pipe.execute(), strict=True) if n]
        if len(found) != 1:  # none; or one per domain (a compensated cross-domain retry)
            return None
        await self.claim_reservation(reservation_id, found[0])
        return found[0]

    def _remember_reservation(self, reservation_id: str, domain: str) -> None:
        self._reservation_domains[reservation_id] = domain
        self._reservation_domains.move_to_end(reservation_id)
        while len(self._reservation_domains) > RESERVATIONS_CACHED:
            self._reservation_domains.popitem(last=False)
