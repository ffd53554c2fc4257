"""Loads a grid of positions (every SKU at every location) into Redis through the store's scripts.

``set_count`` calls go in pipelines of a few thousand, so a million positions load in well under
a minute. The outbox events the counts append are trimmed as the load goes: a benchmark's
seeding is not history the ledger writer should drain while the measurement runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from stocksync.domain.model import DEFAULT_DOMAIN, event_fingerprint
from stocksync.store.keys import Directory, Keys
from stocksync.store.migrate import DOMAINS_LAYOUT, LAYOUT_VERSION
from stocksync.store.scripts import library

RETENTION_SECONDS = 7 * 24 * 3600  # the store's default (script head: retention, outbox cap)
CHUNK = 5000


def seed_grid(
    url: str,
    skus: Sequence[str],
    locations: Sequence[str],
    on_hand: int,
    namespace: str = "default",
) -> float:
    """Locations, then ``on_hand`` of every SKU at every location; returns the seconds taken."""
    keys = Keys(namespace)
    head: list[str | int] = [RETENTION_SECONDS, 0]
    started = time.monotonic()
    client = redis.Redis.from_url(url)
    try:
        functions = library()
        client.function_load(functions.source, replace=True)
        upsert, set_count = functions.function("upsert_location"), functions.function("set_count")
        for location_id in locations:
            args = [*head, location_id, location_id, "warehouse", 52.5, 13.4, 1, 1, ACTOR]
            client.fcall(upsert, 1, keys.anchor, *args)
        pipe = client.pipeline(transaction=False)
        queued = 0
        for sku in skus:
            for location_id in locations:
                fp = event_fingerprint("count", sku, location_id, on_hand, None, None, None)
                args = [*head, sku, location_id, on_hand, "", "", "", "bench-seed", "", fp, ACTOR]
                pipe.fcall(set_count, 1, keys.anchor, *args)
                queued += 1
                if queued == CHUNK:
                    _flush(pipe, keys)
                    queued = 0
        _flush(pipe, keys)
        # Written in this release's layout: the API's start-up has nothing to migrate.
        client.set(keys.layout, LAYOUT_VERSION)
        directory = Directory(namespace)  # the locations routed to the default domain
        client.hset(directory.location_domains, mapping=dict.fromkeys(locations, DEFAULT_DOMAIN))
        client.sadd(directory.domains, DEFAULT_DOMAIN)
        client.set(directory.layout, DOMAINS_LAYOUT)
    finally:
        client.close()
    return time.monotonic() - started


ACTOR = "bench"  # every script call ends with who acts (see _lib.lua)


def _flush(pipe: redis.client.Pipeline, keys: Keys) -> None:
    pipe.xtrim(keys.outbox, maxlen=0, approximate=False)
    replies = pipe.execute()
    bad = [r for r in replies[:-1] if not (isinstance(r, list) and r and r[0] == b"ok")]
    if bad:
        raise RuntimeError(f"set_count refused while seeding: {bad[0]!r}")
