"""Channel pools (online stock): their configuration and what they offer, per SKU or in bulk.

A pool lives inside one stock domain (DESIGN rule 2): its hash and the domain's set of pools
are keys of that domain's slot, written by one ``upsert_pool`` script call, and the
namespace's directory says which domain each pool is in (``register_pool``), so a read is
routed without asking every domain. A pool's reads are one ``pool_availability`` call
whatever its size: the script walks the pool's locations itself, so a channel's number never
costs a round trip per location.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from stocksync.domain.errors import CrossDomain, DomainChange, NotFound, Unprocessable
from stocksync.domain.model import (
    DEFAULT_DOMAIN,
    LOCATION_PATTERN,
    MAX_BATCH_SKUS,
    MAX_POOL_BUFFER,
    MAX_POOL_LOCATIONS,
    MAX_POOL_PRIORITY,
    POOL_PATTERN,
    POOL_STRATEGIES,
    Pool,
    PoolAvailability,
    PoolLocation,
    PoolLocationAvailability,
)
from stocksync.store.replies import raise_for_refusal
from stocksync.store.routing import Routing
from stocksync.store.stale_routes import reroute, unknown_location

POOL_NAME_MAX = 100
_POOL_ID = re.compile(POOL_PATTERN)
_LOCATION_ID = re.compile(LOCATION_PATTERN)
ROW = 4  # fields per location in a 'rows' reply: loc, available (unclamped), buffer, offered


class Pools(Routing):
    """Pools of every domain of the namespace."""

    # -- configuration ---------------------------------------------------------------------

    async def upsert_pool(self, pool: Pool) -> bool:
        """Create or replace a pool; True when it was created.

        The pool's domain is its locations' (``pool.domain`` is not read): all of them must be
        known (:class:`NotFound`) and in one domain (:class:`CrossDomain`), and a pool keeps
        the domain it was created in (:class:`DomainChange`). Nothing is written on a refusal.
        """
        check_pool(pool, self.settings.channels)
        ids = [entry.location_id for entry in pool.locations]
        domain = await self._domain_of_pool_locations(pool.pool_id, ids)
        held = await self.register_pool(pool.pool_id, domain)
        if held != domain:
            raise DomainChange(
                f"pool {pool.pool_id!r} is in stock domain {held!r}, not {domain!r} (the "
                "domain of the locations given); a pool keeps the domain it was created in. "
                "Nothing was changed.",
                domain=held,
            )
        locs = json.dumps(
            [[p.location_id, p.priority, p.buffer] for p in pool.locations], separators=(",", ":")
        )
        reply = await self.run(
            "upsert_pool",
            pool.pool_id,
            pool.name,
            json.dumps(list(pool.channels), separators=(",", ":")),
            pool.strategy,
            locs,
            domain=domain,
        )
        raise_for_refusal(reply, action="upsert_pool", subject=pool.pool_id)
        return bool(int(reply[1]))

    async def _domain_of_pool_locations(self, pool_id: str, location_ids: Sequence[str]) -> str:
        """The one domain of a pool's locations, read fresh from the directory (a pool is
        configured rarely; a cached route may be stale after a location moved): one HMGET
        and one pipelined EXISTS per location."""
        for location_id in location_ids:
            self.forget_location(location_id)
        routed = await self.client.hmget(self.directory.location_domains, list(location_ids))
        domains = [DEFAULT_DOMAIN if d is None else str(d) for d in routed]
        async with self.client.pipeline(transaction=False) as pipe:
            for location_id, domain in zip(location_ids, domains, strict=True):
                pipe.exists(self.keys_of(domain).location(location_id))
            exists = await pipe.execute()
        unknown = [i for i, n in zip(location_ids, exists, strict=True) if not n]
        if unknown:
            names = ", ".join(repr(i) for i in unknown)
            raise NotFound(f"unknown location {names}; nothing was changed", resource="location")
        found: dict[str, list[str]] = {}
        for location_id, domain in zip(location_ids, domains, strict=True):
            self._remember_location(location_id, domain)
            found.setdefault(domain, []).append(location_id)
        if len(found) > 1:
            raise CrossDomain(
                f"the locations of pool {pool_id!r} are in different stock domains ("
                + "; ".join(f"{d}: {', '.join(locs)}" for d, locs in sorted(found.items()))
                + "); a pool's locations must all be in one domain. Nothing was changed.",
                domains={d: sorted(locs) for d, locs in found.items()},
            )
        return next(iter(found))

    async def get_pool(self, pool_id: str) -> Pool | None:
        """A pool's configuration; None when there is no pool of that id."""
        domain = await self.domain_of_pool(pool_id)
        if domain is None:
            return None
        fields: dict[str, str] = await self.client.hgetall(self.keys_of(domain).pool(pool_id))  # type: ignore[assignment]
        return parse_pool(pool_id, fields, domain) if fields else None

    async def list_pools(self) -> list[Pool]:
        """Every pool of every domain, sorted by id."""
        found: list[Pool] = []
        for domain in await self.domains():
            keys = self.keys_of(domain)
            ids = sorted(map(str, await self.client.smembers(keys.pools)))
            async with self.client.pipeline(transaction=False) as pipe:
                for pool_id in ids:
                    pipe.hgetall(keys.pool(pool_id))
                rows = await pipe.execute()
            found += [parse_pool(i, row, domain) for i, row in zip(ids, rows, strict=True) if row]
        return sorted(found, key=lambda pool: pool.pool_id)

    # -- reads -----------------------------------------------------------------------------

    async def pool_availability(self, sku: str, pool_id: str) -> PoolAvailability:
        """What a pool offers of a SKU, per location and in all: one script call."""
        domain = await self._pool_domain(pool_id)
        reply = await self.run("pool_availability", "rows", "pool", pool_id, sku, domain=domain)
        _raise_unknown(reply, pool_id)
        rows = tuple(
            PoolLocationAvailability(
                location_id=str(reply[i]),
                available=max(0, int(reply[i + 1])),
                buffer=int(reply[i + 2]),
                offered=int(reply[i + 3]),
            )
            for i in range(1, len(reply), ROW)
        )
        return PoolAvailability(sku, pool_id, sum(r.offered for r in rows), rows)

    async def pool_availability_many(self, pool_id: str, skus: Iterable[str]) -> dict[str, int]:
        """What a pool offers of each SKU (Σ offered over its locations), in SKU order: one
        script call for a listing page (more only past the script's positions per call)."""
        domain = await self._pool_domain(pool_id)
        return await self._sums("pool", pool_id, skus, domain)

    async def location_availability_many(
        self, location_id: str, skus: Iterable[str]
    ) -> dict[str, int]:
        """Each SKU's availability at one location (clamped at zero): one script call."""
        domain = await self.domain_of_location(location_id)
        try:
            return await self._sums("loc", location_id, skus, domain)
        except NotFound:
            fresh = await reroute(self, [location_id], domain)
            if fresh is None:
                raise
            return await self._sums("loc", location_id, skus, fresh)

    async def _pool_domain(self, pool_id: str) -> str:
        domain = await self.domain_of_pool(pool_id)
        if domain is None:
            raise NotFound(f"pool {pool_id!r} not found", resource="pool")
        return domain

    async def _sums(
        self, target: str, target_id: str, skus: Iterable[str], domain: str
    ) -> dict[str, int]:
        """Σ offered per SKU; the script answers how many SKUs it read (it bounds the
        positions one call reads), and the rest go in the next call."""
        pending = list(dict.fromkeys(skus))
        out: dict[str, int] = {}
        while pending:
            chunk = pending[:MAX_BATCH_SKUS]
            reply = await self.run(
                "pool_availability", "sums", target, target_id, *chunk, domain=domain
            )
            _raise_unknown(reply, target_id)
            done = int(reply[1])
            for sku, value in zip(chunk[:done], reply[2 : 2 + done], strict=True):
                out[sku] = int(value)
            pending = pending[done:]
        return out


def _raise_unknown(reply: Sequence[Any], target_id: str) -> None:
    if reply and reply[0] == "unknown_pool":
        raise NotFound(f"pool {target_id!r} not found", resource="pool")
    if unknown_location(reply):
        raise NotFound(f"unknown location {target_id!r}", resource="location")
    raise_for_refusal(reply, action="read", subject=target_id)


def parse_pool(pool_id: str, fields: dict[str, str], domain: str) -> Pool:
    return Pool(
        pool_id=pool_id,
        name=fields.get("name", ""),
        channels=tuple(json.loads(fields.get("channels") or "[]")),
        strategy=fields.get("strategy", "priority"),
        locations=tuple(
            PoolLocation(str(loc), int(priority), int(buffer))
            for loc, priority, buffer in json.loads(fields.get("locs") or "[]")
        ),
        domain=domain,
    )


def check_pool(pool: Pool, channels: Sequence[str]) -> None:
    """The rules of a pool's configuration (the API's schema states the same bounds; the
    store checks them for every other caller): :class:`Unprocessable` when one is broken."""
    problems = []
    if not _POOL_ID.match(pool.pool_id):
        problems.append(f"pool id {pool.pool_id!r} does not match {POOL_PATTERN}")
    if not 1 <= len(pool.name) <= POOL_NAME_MAX:
        problems.append(f"name must have 1 to {POOL_NAME_MAX} characters")
    if not pool.channels or len(set(pool.channels)) != len(pool.channels):
        problems.append("channels must name at least one channel, each once")
    unknown = sorted(set(pool.channels) - set(channels))
    if unknown:
        problems.append(
            f"unknown channel(s) {', '.join(unknown)}; configured: {', '.join(channels)}"
        )
    if pool.strategy not in POOL_STRATEGIES:
        problems.append(f"strategy must be one of {', '.join(POOL_STRATEGIES)}")
    if not 1 <= len(pool.locations) <= MAX_POOL_LOCATIONS:
        problems.append(f"a pool has 1 to {MAX_POOL_LOCATIONS} locations")
    counts = Counter(entry.location_id for entry in pool.locations)
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        problems.append(f"location(s) listed more than once: {', '.join(repeated)}")
    for entry in pool.locations:
        if not _LOCATION_ID.match(entry.location_id):
            problems.append(f"location id {entry.location_id!r} does not match {LOCATION_PATTERN}")
        if not 0 <= entry.priority <= MAX_POOL_PRIORITY:
            problems.append(f"priority of {entry.location_id!r} must be 0..{MAX_POOL_PRIORITY}")
        if not 0 <= entry.buffer <= MAX_POOL_BUFFER:
            problems.append(f"buffer of {entry.location_id!r} must be 0..{MAX_POOL_BUFFER}")
    if problems:
        raise Unprocessable("; ".join(problems) + ". Nothing was changed.", problems=problems)
