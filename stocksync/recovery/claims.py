"""The sweeper of the directory's reservation claims, so that the hash stays bounded.

Every reservation id is claimed for its domain in the namespace's directory by its first
reserve (``reservation_domains``: id -> ``<domain>|<claimed at, ms>``), in the directory's own
slot. The reservation itself lives in its domain and is pruned there after the retention period
once terminal; a refused reserve leaves a claim with no reservation at all. Nothing in a domain's
slot can delete the directory's entry (a script touches one slot), so this sweeper does: it
HSCANs the hash a page at a time and drops each claim older than a grace period whose
reservation key no longer exists in its domain.

The grace period covers a reserve between its claim and its script (a claim younger than it is
never looked at). A claim dropped while a retry of the same id recreates the reservation (the
id was refused long ago and retried just now) is put back: after the HDEL the page's
reservations are looked up again and any that exists gets its claim back. Run by one process of
the deployment at a time (a lease, like the audit).
"""

from __future__ import annotations

import logging
import re
from typing import cast

from redis.exceptions import RedisError

from stocksync.domain.model import DOMAIN_PATTERN
from stocksync.recovery.lease import Lease, lease_seconds, run_under_lease
from stocksync.store.redis_store import RedisStockStore

log = logging.getLogger(__name__)

CLAIM_GRACE_MS = 60_000  # a claim younger than this is never swept
SWEEP_PAGE = 500  # claims per HSCAN step
SWEEP_INTERVAL_SECONDS = 60.0

_VALID_DOMAIN = re.compile(DOMAIN_PATTERN)


async def _now_ms(store: RedisStockStore) -> int:
    seconds, micros = await store.client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _existing(store: RedisStockStore, claims: dict[str, str]) -> set[str]:
    """Those of ``claims`` (id -> domain) whose reservation key exists in its domain."""
    ids = list(claims)
    async with store.client.pipeline(transaction=False) as pipe:
        for reservation_id in ids:
            pipe.exists(store.keys_of(claims[reservation_id]).reservation(reservation_id))
        found = await pipe.execute()
    return {i for i, n in zip(ids, found, strict=True) if n}


async def sweep_claims(
    store: RedisStockStore, *, grace_ms: int = CLAIM_GRACE_MS, page: int = SWEEP_PAGE
) -> int:
    """One pass over the claims; returns how many were dropped."""
    key = store.directory.reservation_domains
    now = await _now_ms(store)
    cursor: int = 0
    dropped = 0
    while True:
        cursor, raw = await store.client.hscan(key, cursor, count=page)
        entries = cast("dict[str, str]", raw)
        stale: dict[str, str] = {}  # id -> domain
        values: dict[str, str] = {}
        for raw_id, raw_value in entries.items():
            value = str(raw_value)
            domain, _, claimed = value.partition("|")
            if not _VALID_DOMAIN.match(domain):
                continue  # not ours to judge: left alone
            if int(claimed or 0) + grace_ms < now:
                stale[str(raw_id)] = domain
                values[str(raw_id)] = value
        if stale:
            gone = [i for i in stale if i not in await _existing(store, stale)]
            if gone:
                await store.client.hdel(key, *gone)
                # A retry that recreated one meanwhile gets its claim back (see above).
                back = await _existing(store, {i: stale[i] for i in gone})
                for reservation_id in back:
                    await store.client.hsetnx(key, reservation_id, values[reservation_id])
                dropped += len(gone) - len(back)
        if int(cursor) == 0:
            return dropped


def claims_lease(store: RedisStockStore, interval: float) -> Lease:
    """The lease the sweepers of a namespace share (in the directory's slot)."""
    return Lease(store.client, store.directory.lease("claims"), lease_seconds(interval))


async def run_claim_sweeps(
    store: RedisStockStore,
    interval: float = SWEEP_INTERVAL_SECONDS,
    *,
    lease: Lease | None = None,
) -> None:
    """Sweep every ``interval`` seconds while this process holds ``lease``."""

    async def once() -> None:
        try:
            dropped = await sweep_claims(store)
        except RedisError as exc:
            log.warning("reservation claims sweep failed: %s", exc)
            return
        if dropped:
            log.info("reservation claims swept: %d", dropped)

    await run_under_lease(lease, interval, once)
