"""Ledger lag at the core benchmark's load: HTTP reserves with wrk while the writer runs.

``stocksync serve`` (W=2, SQLite ledger in its data dir, workers in-process: each worker process
runs a ledger writer, so two consumers share the group) takes a closed-loop reserve load from
wrk at 64 connections, in slices that alternate the Redis appendfsync mode (A B B A ..., by
CONFIG SET on the same server, so both modes share the processes, the data and the noise). A
thread samples the lag every 0.5 s (:mod:`bench.harness.lag_sampler`); the ledger's
``stock_movements`` row count before and after each slice gives the events written in it. After
the last slice, the time the writer needs to catch up is measured.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from bench.harness.config import HOT_LOCATION, HOT_SKU, ON_HAND
from bench.harness.lag_sampler import LagSample, LagSampler
from bench.harness.report import RESULTS_DIR, Row
from bench.harness.servers import ApiServer, BenchRedis
from bench.harness.stats import percentile
from bench.load.wrk_runner import WrkResult, run_wrk
from stocksync.auth.repository import SqlApiKeys
from stocksync.ledger.db import create_tables, make_engine
from stocksync.store.keys import Keys

WORKERS = 2
CONCURRENCY = 64
CATCH_UP_TIMEOUT_S = 15.0
NAMESPACE = "default"  # the API's


@dataclass
class Mode:
    """One appendfsync mode's slices, added together."""

    fsync: str
    wrk: WrkResult | None = None
    written: int = 0  # ledger rows committed during its slices
    samples: list[LagSample] = field(default_factory=list)


def api_key(data_dir: Path) -> str:
    """An all-scopes key in the server's database, created in-process (no CLI start-up)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{(data_dir / 'stocksync.db').resolve()}")
    try:
        create_tables(engine)
        key, _ = SqlApiKeys(engine, 0).create("bench", "read,reserve,stock:write,admin")
    finally:
        engine.dispose()
    return key


def movements(database: Path) -> int:
    """Rows in the API's SQLite ledger (read-only use of a WAL database another process writes)."""
    with sqlite3.connect(database, timeout=30) as conn:
        row = conn.execute("SELECT count(*) FROM stock_movements").fetchone()
    return int(row[0])


def _slices(
    server: ApiServer,
    redis: BenchRedis,
    sampler: LagSampler,
    modes: list[Mode],
    rounds: int,
    seconds: int,
    database: Path,
) -> None:
    control = Redis.from_url(redis.url, decode_responses=True)
    try:
        for r in range(rounds):
            for mode in modes if r % 2 == 0 else modes[::-1]:  # ABBA: drift hits both alike
                control.config_set("appendfsync", mode.fsync)
                before = movements(database)
                sampler.mode = mode.fsync
                tag = f"lag-{mode.fsync}-r{r}"
                result = run_wrk(
                    server, redis, "reserve.lua", "/v1/reservations", CONCURRENCY, seconds, tag
                )
                sampler.mode = None
                mode.written += movements(database) - before
                mode.wrk = result if mode.wrk is None else mode.wrk + result
    finally:
        control.config_set("appendfsync", redis.appendfsync)
        control.close()


def run(
    redis: BenchRedis, fsyncs: tuple[str, ...], rounds: int, seconds: int, warmup: int
) -> tuple[list[Row], list[str]]:
    """Rows (reserve throughput and ledger lag per mode) and notes; ``redis`` runs ``always``."""
    data_dir = redis.dir / "api-ledger-lag"
    key = api_key(data_dir)
    log = RESULTS_DIR / "logs" / f"serve-ledger-lag-w{WORKERS}.log"
    modes = [Mode(f) for f in fsyncs]
    with ApiServer(redis.url, data_dir, WORKERS, key, keep_log=log) as server:
        server.seed(HOT_LOCATION, HOT_SKU, ON_HAND)
        run_wrk(server, redis, "reserve.lua", "/v1/reservations", CONCURRENCY, warmup, "lag-warm")
        with LagSampler(redis.url, Keys(NAMESPACE).outbox) as sampler:
            settle = sampler.wait_caught_up(CATCH_UP_TIMEOUT_S)
            _slices(server, redis, sampler, modes, rounds, seconds, data_dir / "stocksync.db")
            backlog = sampler.sample()
            catch_up = sampler.wait_caught_up(CATCH_UP_TIMEOUT_S)
            samples = list(sampler.samples)
    for mode in modes:
        mode.samples = [s for s in samples if s.mode == mode.fsync]
    rows = [row for mode in modes for row in _rows(mode, modes[0])]
    caught = "did not catch up" if catch_up is None else f"caught up in {catch_up:.1f} s"
    notes = [
        f"ledger lag run: after the last slice {backlog.events:,} events"
        f" ({backlog.seconds:.2f} s) were behind; the writer {caught}"
        f" (timeout {CATCH_UP_TIMEOUT_S:g} s); before the first slice it settled"
        + (" (timed out)" if settle is None else f" in {settle:.1f} s")
    ]
    return rows, notes


def _rows(mode: Mode, first: Mode) -> list[Row]:
    assert mode.wrk is not None
    assert first.wrk is not None
    result, seconds = mode.wrk, mode.wrk.seconds
    rate = result.ok / seconds
    http = Row(
        section="ledger",
        scenario="HTTP POST /v1/reservations (lag run)",
        fsync=mode.fsync,
        workers=WORKERS,
        concurrency=str(CONCURRENCY),
        ops_s=rate,
        p50_ms=result.percentile(50),
        p99_ms=result.percentile(99),
        errors=result.errors,
        cpu=result.cpu.shares(),
        extra={"seconds": round(seconds, 2), "api_process_cpu": result.cpu.process_shares("api")},
    )
    if mode is not first:
        http.baseline = f"same, {first.fsync}"
        http.baseline_ops_s = first.wrk.ok / first.wrk.seconds
    events = sorted(s.events for s in mode.samples)
    ages = sorted(s.seconds for s in mode.samples)
    lag = Row(
        section="ledger",
        scenario="ledger lag age (ops/s: written)",
        fsync=mode.fsync,
        workers=WORKERS,
        concurrency=str(CONCURRENCY),
        ops_s=mode.written / seconds,
        p50_ms=percentile(ages, 50) * 1000,
        p99_ms=percentile(ages, 99) * 1000,
        baseline="outbox in",
        baseline_ops_s=rate,  # one outbox event per single-line reservation
        extra={
            "samples": len(mode.samples),
            "lag_events_p50": percentile(events, 50),
            "lag_events_p99": percentile(events, 99),
            "lag_events_max": events[-1] if events else None,
            "lag_seconds_max": ages[-1] if ages else None,
            "capped": any(s.capped for s in mode.samples),
            "written": mode.written,
        },
    )
    return [http, lag]
