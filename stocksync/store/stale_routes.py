"""A cached route that went stale: a location moved to another domain while a process ran.

Each process caches location -> domain (:mod:`stocksync.store.routing`), and ``stocksync
domains move-location`` changes it under running processes. A call routed by a stale entry
reaches the old domain, where the location no longer exists: its answer is
``unknown_location`` and it changed nothing there. :func:`reroute` then drops the cached
entries, reads the directory again, and gives the domain to retry in (once), so API processes
need no restart after a move.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from stocksync.domain.errors import CrossDomain
from stocksync.store.routing import Routing


def unknown_location(reply: Sequence[Any]) -> bool:
    return bool(reply) and reply[0] == "unknown_location"


async def reroute(store: Routing, location_ids: Iterable[str], domain: str) -> str | None:
    """The domain to retry in after ``domain`` answered ``unknown_location`` for a call on
    ``location_ids``; None when the directory still says ``domain`` (the location really is
    unknown) or now spans domains (the caller's refusal stands)."""
    ids = list(dict.fromkeys(location_ids))
    for location_id in ids:
        store.forget_location(location_id)
    try:
        fresh = await store.domain_of_locations(ids)
    except CrossDomain:
        return None
    return None if fresh == domain else fresh
