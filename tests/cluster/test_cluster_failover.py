"""kill -9 of the primary serving a stock domain while reservations are being made in it.

Every reservation the store acknowledged must survive the failover with its lines (in cluster
mode the default ``replica_wait=auto`` makes each acknowledgement wait for the shard's replica,
which is the node promoted), and the positions must equal the sum of the holds. Calls that
failed while the shard had no primary may or may not have applied: each is retried with the
same id and lines once the cluster has a primary again, after which every id is held exactly
once (reserved counts each once, whichever way the first attempt went).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError

from stocksync.config import Settings
from stocksync.domain.errors import (
    CrossDomain,
    IdempotencyConflict,
    InsufficientStock,
    NotFound,
    StockSyncError,
    Unprocessable,
)
from stocksync.domain.model import ACTIVE, Line, Location, State, normalize_lines
from stocksync.store.connection import open_store
from stocksync.store.redis_store import RedisStockStore
from tests.support.cluster import ValkeyCluster, wait_until
from tests.support.cluster_domains import directory_slot, domain_off_directory, domain_slot

RESERVERS = 6
SKUS = ("SKU-1", "SKU-2", "SKU-3")
LOCATIONS = ("store-a", "store-b")
STOCK = 1_000_000  # never short: every failure below is the failover's
ACKED_BEFORE_KILL = 60
ACKED_AFTER_PROMOTION = 60
PROGRESS_SECONDS = 60.0
TTL = 3600
# Short, so calls made while the shard has no primary fail (and are retried by the test)
# rather than all riding the failover out inside the transport.
RETRY_SECONDS = 0.5
# What a reserve may NOT raise while its primary is down: a refusal of the request itself.
# (It may raise the transport's last error, a redis error, or ReplicationTimeout.)
REFUSALS = (InsufficientStock, IdempotencyConflict, CrossDomain, Unprocessable, NotFound)


def refused(exc: Exception) -> bool:
    return isinstance(exc, REFUSALS) or not isinstance(exc, (StockSyncError, RedisError, OSError))


def lines_of(worker: int, n: int) -> list[Line]:
    """One or two lines; spread over every position of the domain."""
    first = Line(SKUS[n % len(SKUS)], LOCATIONS[worker % len(LOCATIONS)], 1 + n % 3)
    if n % 2:
        return [first]
    return [first, Line(SKUS[(n + 1) % len(SKUS)], LOCATIONS[(worker + 1) % 2], 1)]


@asynccontextmanager
async def cluster_store(cluster: ValkeyCluster, namespace: str) -> AsyncIterator[RedisStockStore]:
    configured = Settings(
        redis_url=cluster.seed_url,
        redis_cluster=True,
        namespace=namespace,
        redis_cluster_retry_seconds=RETRY_SECONDS,
    )
    assert configured.replica_wait == "auto"  # the cluster-mode default under test
    async with open_store(configured, cluster.seed_url, pool_size=RESERVERS + 2) as store:
        yield store


async def settle(store: RedisStockStore, rid: str, lines: list[Line]) -> bool:
    """The reserve again (same id, same lines) until it answers; True when it created it."""
    deadline = time.monotonic() + PROGRESS_SECONDS
    while True:
        try:
            return (await store.reserve(rid, "web", lines, ttl_seconds=TTL)).created
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_every_acknowledged_reservation_survives_a_primary_killed_under_load(
    cluster: ValkeyCluster,
) -> None:
    namespace = "fo" + str(time.monotonic_ns())[-10:]
    owners = cluster.slot_map()
    domain = domain_off_directory(owners, namespace)
    victim = cluster.primary_for_slot(domain_slot(namespace, domain))
    assert cluster.primary_for_slot(directory_slot(namespace)).port != victim.port
    assert cluster.replicas_of(victim), "the victim's shard has a replica to promote"

    acknowledged: dict[str, list[Line]] = {}
    failed: dict[str, list[Line]] = {}
    errors: Counter[str] = Counter()
    unexpected: list[Exception] = []
    stop = asyncio.Event()
    killed = False
    async with cluster_store(cluster, namespace) as store:
        for loc in LOCATIONS:
            await store.upsert_location(Location(loc, loc, "store", domain=domain))
            for sku in SKUS:
                await store.set_count(sku, loc, STOCK)

        async def reserver(worker: int) -> None:
            n = 0
            while not stop.is_set():
                rid, lines = f"w{worker}-{n}", lines_of(worker, n)
                n += 1
                try:
                    result = await store.reserve(rid, "web", lines, ttl_seconds=TTL)
                except Exception as exc:
                    errors[type(exc).__name__] += 1
                    unexpected.extend([exc] if refused(exc) else [])
                    failed[rid] = lines
                    await asyncio.sleep(0.01)  # the shard is down: don't spin
                    continue
                assert result.created
                acknowledged[rid] = lines

        async def acked(count: int) -> None:
            goal = len(acknowledged) + count
            await asyncio.to_thread(
                wait_until,
                f"{count} more reservations acknowledged",
                lambda: len(acknowledged) >= goal,
                PROGRESS_SECONDS,
            )

        tasks = [asyncio.create_task(reserver(worker)) for worker in range(RESERVERS)]
        try:
            await acked(ACKED_BEFORE_KILL)
            await asyncio.to_thread(cluster.kill, victim)
            killed = True
            promoted = await asyncio.to_thread(cluster.wait_for_failover, victim)
            assert promoted.port != victim.port
            await acked(ACKED_AFTER_PROMOTION)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                for task in tasks:
                    task.result()  # a reserver's own assertion fails the test
                assert unexpected == []
                # Failed calls: applied or not, the same request again settles them once.
                retried = Counter([await settle(store, rid, ln) for rid, ln in failed.items()])

                holds = {**acknowledged, **failed}
                for rid, lines in holds.items():
                    reservation = await store.get_reservation(rid)
                    assert reservation.state is State.HELD, rid
                    assert reservation.lines == normalize_lines(lines), rid
                expected = Counter[tuple[str, str]]()
                for lines in holds.values():
                    for line in lines:
                        expected[line.sku, line.location_id] += line.qty
                for sku in SKUS:
                    for pos, _ in await store.positions(sku, LOCATIONS):
                        assert pos.on_hand == STOCK
                        assert pos.reserved == expected[sku, pos.location_id], (sku, pos)
                active = await store.client.zrange(store.keys_of(domain).active, 0, -1)
                assert set(active) == set(holds)
                for rid in holds:  # nothing else in the domain, and every hold is active
                    assert (await store.get_reservation(rid)).state in ACTIVE
                print(  # the test's own figures, shown with -s
                    f"acknowledged {len(acknowledged)}, failed {len(failed)} "
                    f"({dict(errors)}), of which the retry created {retried[True]}"
                )
            finally:
                if killed:
                    await asyncio.to_thread(cluster.restart, victim)
    assert cluster.primary_for_slot(domain_slot(namespace, domain)).port != victim.port
