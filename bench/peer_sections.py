"""The scenarios run against stocksync and the row-lock peer in one invocation: hot, spread."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from bench import hot_sku, spread
from bench.harness import pg
from bench.harness.config import Profile
from bench.harness.pg import TempDatabase
from bench.harness.report import RESULTS_DIR, Row
from bench.harness.seeding import seed_grid
from bench.harness.servers import ApiServer, BenchRedis, create_api_key
from bench.hot_sku import Contender
from bench.peer.server import PeerServer
from bench.spread_gen import location_name, sku_name

FSYNC_OURS = "appendfsync always"
Log = Callable[[str], None]


def peer_fsync() -> str:
    return "synchronous_commit " + pg.show("synchronous_commit")["synchronous_commit"]


def ours_contender(server: ApiServer, redis: BenchRedis) -> Contender:
    return Contender(
        name="stocksync",
        fsync=FSYNC_OURS,
        workers=server.workers,
        base_url=server.base_url,
        key=server.key,
        api_pids=server.pids,
        store_pids=lambda: [redis.pid],
        seed=server.seed,
        held=hot_sku.redis_held(redis.url),
    )


def peer_contender(peer: PeerServer, fsync: str) -> Contender:
    return Contender(
        name="row-lock peer",
        fsync=fsync,
        workers=peer.workers,
        base_url=peer.base_url,
        key=peer.key,
        api_pids=peer.pids,
        store_pids=hot_sku.postgres_pids,
        seed=peer.seed,
        held=peer.held,
    )


def ours_target(server: ApiServer, redis: BenchRedis, fsync: str) -> spread.Target:
    return spread.Target(
        "stocksync",
        fsync,
        server.workers,
        server.port,
        server.key,
        server.pids,
        lambda: [redis.pid],
    )


def hot(
    api: Callable[[], AbstractContextManager[ApiServer]],
    redis: BenchRedis,
    workers: int,
    units: int,
    connections: int,
    max_seconds: int,
    log: Log,
    notes: list[str],
) -> tuple[list[Row], list[hot_sku.Race]]:
    """The race on stocksync, then on the peer (when PostgreSQL is reachable)."""
    tag = f"hot{time.time_ns()}"
    sku = f"FLASH-{tag}"
    races: list[hot_sku.Race] = []
    rows: list[Row] = []
    with api() as server:
        log(f"    hot SKU race on stocksync: {connections} buyers, {units} units")
        who = ours_contender(server, redis)
        races.append(hot_sku.race(who, sku, units, connections, max_seconds, tag + "s"))
        rows.append(hot_sku.row(who, races[-1], connections))
    reason = pg.unreachable()
    if reason:
        notes.append(f"hot SKU race: row-lock peer skipped: {reason}")
        return rows, races
    with PeerServer(workers, RESULTS_DIR / "logs") as peer:
        log(f"    hot SKU race on the row-lock peer: {connections} buyers, {units} units")
        who = peer_contender(peer, peer_fsync())
        races.append(hot_sku.race(who, sku, units, connections, max_seconds, tag + "p"))
        rows.append(hot_sku.row(who, races[-1], connections))
    hot_sku.compare(rows[0], races[0], rows[1], races[1])
    return rows, races


def spread_load(
    api: Callable[[], AbstractContextManager[ApiServer]],
    redis: BenchRedis,
    profile: Profile,
    log: Log,
    notes: list[str],
) -> list[Row]:
    """Seed the same grid in both systems, run the same shoppers against each."""
    workers, skus, locations = profile.hot_workers, profile.spread_skus, profile.spread_locations
    concurrency = profile.spread_concurrency
    tag = f"sp{time.time_ns()}"

    def load(target: spread.Target) -> spread.SpreadRun:
        log(f"    spread load on {target.name}: {concurrency} shoppers")
        return spread.drive(
            target,
            skus,
            locations,
            concurrency,
            profile.spread_procs,
            profile.spread_seconds,
            profile.spread_warmup_s,
            tag + target.name[0],
        )

    sku_ids = [sku_name(i) for i in range(skus)]
    location_ids = [location_name(i) for i in range(locations)]
    seconds = seed_grid(redis.url, sku_ids, location_ids, 1_000)
    log(f"    {skus * locations:,} positions loaded into Redis in {seconds:.1f} s")
    reason = pg.unreachable()
    if reason:
        with api() as server:  # the ledger in SQLite in the data dir, the embedded default
            target = ours_target(server, redis, FSYNC_OURS + ", ledger SQLite")
            ours = spread.rows(target, load(target), concurrency)
        notes.append(f"spread load: row-lock peer skipped: {reason}")
        return ours
    # The ledger on the same PostgreSQL as the peer: fulfil writes its sale through to the
    # ledger before answering, and SQLite (one writer at a time) would bound that, not us.
    with TempDatabase() as ledger:
        data_dir = redis.dir / "api-pg-ledger"
        key = create_api_key(redis.url, data_dir, ledger.url)
        log_path = RESULTS_DIR / "logs" / f"serve-spread-w{workers}.log"
        with ApiServer(redis.url, data_dir, workers, key, log_path, ledger.url) as server:
            target = ours_target(server, redis, FSYNC_OURS + ", ledger PostgreSQL")
            ours = spread.rows(target, load(target), concurrency)
    with PeerServer(workers, RESULTS_DIR / "logs") as peer:
        peer.seed_grid(sku_ids, location_ids, 1_000)
        target = spread.Target(
            "row-lock peer",
            peer_fsync(),
            workers,
            peer.port,
            peer.key,
            peer.pids,
            hot_sku.postgres_pids,
        )
        theirs = spread.rows(target, load(target), concurrency)
    spread.compare(ours, theirs)
    return ours + theirs
