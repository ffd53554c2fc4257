"""Ledger writer throughput: a realistic outbox drained into SQLite and PostgreSQL.

The outbox is generated once (:mod:`bench.harness.outbox`, under appendfsync everysec to save
time), then drained with the real ``drain_once`` (first read 500 entries, then the batch size
adapts to the backlog as in production, up to 5,000) from a fresh ``ledger`` consumer group
into each database, with Redis back on appendfsync always. A second group that never reads
keeps the entries from being trimmed, so every database gets the same events. The baseline is
the same number of ``stock_movements``-shaped rows inserted into a plain table (no indexes, no
constraints) with executemany, one transaction per 500 rows, half before and half after the
drain, on the same engine (same pragmas, same server).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

from redis import Redis as SyncRedis
from sqlalchemy import Column, MetaData, Table, func, insert, select
from sqlalchemy.engine import Engine

from bench.harness import outbox, pg
from bench.harness.aio import run_async
from bench.harness.cpu import CpuSample, CpuWindow, PidSource, self_cpu_seconds
from bench.harness.report import Row
from bench.harness.servers import BenchRedis
from bench.harness.sql_probe import StatementTimes, TimedLedger, postgres_pids
from bench.harness.stats import Latency
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.movements import movement_row
from stocksync.ledger.sql_ledger import MOVEMENTS
from stocksync.ledger.tables import BIG_ID
from stocksync.metrics import Metrics
from stocksync.store.keys import Keys
from stocksync.store.outbox import Outbox, OutboxEvent, decode_event
from stocksync.workers.ledger_copy import GROUP, LedgerCopy

BATCH = 500
NAMESPACE = "ledgerbench"
KEEP_GROUP = "bench-keep"  # never reads: its bound stops the writer's trim at the first entry


@dataclass
class Timing:
    rows: int = 0
    seconds: float = 0.0
    batches: list[float] = field(default_factory=list)  # seconds per transaction
    cpu: CpuSample = field(default_factory=CpuSample)
    statements: dict[str, float] = field(default_factory=dict)  # cursor seconds by statement

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class Target:
    name: str  # "SQLite" | "PostgreSQL"
    url: str
    durability: str  # what a commit waits for: SQLite synchronous, PostgreSQL synchronous_commit


def cpu_groups(redis: BenchRedis, engine: Engine) -> dict[str, PidSource]:
    groups: dict[str, PidSource] = {"redis": lambda: [redis.pid]}
    if engine.dialect.name == "postgresql":
        groups["db"] = postgres_pids
    return groups


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def raw_table() -> Table:
    columns = [Column(c.name, c.type) for c in MOVEMENTS.columns if c.name != "id"]
    table = Table("bench_raw_rows", MetaData(), Column("id", BIG_ID, primary_key=True), *columns)
    return table


def raw_insert(
    engine: Engine, table: Table, rows: Sequence[dict[str, Any]], redis: BenchRedis
) -> Timing:
    timing = Timing(rows=len(rows))
    window = CpuWindow(cpu_groups(redis, engine)).start()
    cpu_before = self_cpu_seconds()
    started = perf_counter()
    for chunk in _chunks(rows, BATCH):
        began = perf_counter()
        with engine.begin() as conn:
            conn.execute(insert(table), list(chunk))
        timing.batches.append(perf_counter() - began)
    timing.seconds = perf_counter() - started
    timing.cpu = window.stop(self_cpu_seconds() - cpu_before)
    return timing


async def drain(redis: BenchRedis, engine: Engine) -> Timing:
    """``drain_once`` from a fresh ``ledger`` group: every entry of the outbox, into ``engine``."""
    client = await outbox.open_client(redis.url, 4)
    try:
        stream = Keys(NAMESPACE).outbox
        await client.xgroup_destroy(stream, GROUP)
        ledger = TimedLedger(engine)
        window = CpuWindow(cpu_groups(redis, engine)).start()
        cpu_before = self_cpu_seconds()  # includes the worker thread that runs record()
        started = perf_counter()
        with StatementTimes(engine) as statements:
            copy = LedgerCopy(
                Outbox(client, Keys(NAMESPACE)), ledger, Metrics(), consumer="bench", batch=BATCH
            )
            done = await copy.drain_once()
        seconds = perf_counter() - started
        cpu = window.stop(self_cpu_seconds() - cpu_before)
        return Timing(done, seconds, ledger.seconds, cpu, statements.seconds)
    finally:
        await client.aclose()


def _movements(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(MOVEMENTS)).scalar_one())


def measure(redis: BenchRedis, target: Target, events: list[OutboxEvent]) -> list[Row]:
    engine = make_engine(target.url)
    try:
        create_tables(engine)
        table = raw_table()
        table.create(engine)
        rows = [movement_row(e) for e in events if e.sku]
        half = len(rows) // 2 // BATCH * BATCH
        before = raw_insert(engine, table, rows[:half], redis)
        ledger = run_async(drain(redis, engine))
        after = raw_insert(engine, table, rows[half:], redis)
        written = _movements(engine)
    finally:
        engine.dispose()
    raw = Timing(before.rows + after.rows, before.seconds + after.seconds)
    raw.batches, raw.cpu = before.batches + after.batches, before.cpu + after.cpu
    return rows_of(target, raw, ledger, len(events), len(rows), written)


def rows_of(
    target: Target, raw: Timing, ledger: Timing, events: int, sku_events: int, written: int
) -> list[Row]:
    raw_latency = Latency.of_seconds(raw.batches)
    sql_latency = Latency.of_seconds(ledger.batches)
    base = Row(
        section="ledger",
        scenario=f"raw INSERT executemany -> {target.name} (baseline)",
        fsync=target.durability,
        workers=None,
        concurrency="1",
        ops_s=raw.rate,
        p50_ms=raw_latency.p50,
        p99_ms=raw_latency.p99,
        cpu=raw.cpu.shares(),
        extra={"rows": raw.rows, "batch": BATCH, "seconds": round(raw.seconds, 3)},
    )
    sql_seconds = sum(ledger.batches)
    row = Row(
        section="ledger",
        scenario=f"ledger drain_once -> {target.name}",
        fsync=target.durability,
        workers=None,
        concurrency="1",
        ops_s=ledger.rate,
        p50_ms=sql_latency.p50,
        p99_ms=sql_latency.p99,
        baseline="raw INSERT",
        baseline_ops_s=raw.rate,
        errors=abs(ledger.rows - events) + abs(written - sku_events),
        cpu=ledger.cpu.shares(),
        extra={
            "events": ledger.rows,
            "batches": len(ledger.batches),
            "batch": BATCH,
            "seconds": round(ledger.seconds, 3),
            "sql_share": round(sql_seconds / ledger.seconds, 3) if ledger.seconds else None,
            "max_batch_ms": round(sql_latency.max, 2),
            "movements_written": written,
            "statement_seconds": {k: round(v, 3) for k, v in ledger.statements.items()},
        },
    )
    return [base, row]


def targets(work_dir: Path, stack: ExitStack, notes: list[str]) -> Iterator[Target]:
    """SQLite in ``work_dir``, then a fresh PostgreSQL database (dropped with ``stack``)."""
    yield Target("SQLite", f"sqlite:///{work_dir / 'ledger.db'}", "FULL")
    reason = pg.unreachable()
    if reason is not None:
        notes.append(f"ledger PostgreSQL rows skipped: {reason}")
        return
    database = stack.enter_context(pg.TempDatabase())
    shown = pg.show("fsync", "synchronous_commit")
    durability = shown["synchronous_commit"] if shown["fsync"] == "on" else "fsync off"
    yield Target("PostgreSQL", database.url, durability)


def prepare(redis: BenchRedis, events: int, notes: list[str]) -> list[OutboxEvent]:
    """Generate the outbox (under everysec: it is set-up, not measured) and pin it."""
    client = SyncRedis.from_url(redis.url, decode_responses=True)
    try:
        client.config_set("appendfsync", "everysec")
        try:
            generated = run_async(outbox.generate(redis.url, NAMESPACE, events))
        finally:
            client.config_set("appendfsync", redis.appendfsync)
        stream = Keys(NAMESPACE).outbox
        client.xgroup_create(stream, KEEP_GROUP, id="0")
        raw: list[tuple[str, dict[str, str]]] = client.xrange(stream)  # type: ignore[assignment]
    finally:
        client.close()
    notes.append(
        f"ledger outbox: {generated.events:,} events from {generated.calls:,} script calls"
        f" ({outbox.SKUS} SKUs x {outbox.LOCATIONS} locations; orders of 1-3 lines: 55 %"
        " confirmed+fulfilled, 30 % released, 10 % left held, 5 % confirmed; 2 % adjustments)"
        f" generated in {generated.seconds:.1f} s by {outbox.TASKS} concurrent tasks"
    )
    return [decode_event(NAMESPACE, i, f) for i, f in raw]


def run(redis: BenchRedis, events: int, notes: list[str]) -> list[Row]:
    """Generate the outbox on ``redis`` (an appendfsync always Redis), drain it into each DB."""
    all_events = prepare(redis, events, notes)
    work_dir = redis.dir / "ledger"
    work_dir.mkdir(exist_ok=True)
    rows: list[Row] = []
    with ExitStack() as stack:
        for target in targets(work_dir, stack, notes):
            rows += measure(redis, target, all_events)
    return rows
