"""The ``audit`` section: a full audit at N positions (1,000,000 in the full profile) against
same-run baselines on the same data.

Redis gets N positions (every SKU at 20 locations, counted once each, through the scripts);
the ledger, a throw-away PostgreSQL database, gets the matching N count movements by COPY.
Then, in one run:

- ``audit()``: the ledger's fold streamed in pages, one script call per page of Redis reads,
  and a SCAN pass over Redis's position keys;
- baseline: a plain ``SCAN`` + pipelined ``HGETALL`` over the same keys (reading Redis alone,
  no comparison), and, as a note, the SQL fold alone (fetching every row).

The ratio is the audit's positions per second over the baseline's.
"""

from __future__ import annotations

import asyncio
import io
import math
import time

import psycopg
from redis.asyncio import Redis
from sqlalchemy.engine import Engine

from bench.harness.pg import TempDatabase, unreachable
from bench.harness.report import Row
from bench.harness.seeding import seed_grid
from bench.harness.servers import BenchRedis
from stocksync.config import Settings
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.queries import folded_skus
from stocksync.recovery.audit import audit
from stocksync.store.keys import Keys
from stocksync.store.redis_store import RedisStockStore

NAMESPACE = "default"  # seed_grid's
LOCATIONS = 20
ON_HAND = 100
SCAN_COUNT = 1_000
AT = "2026-01-01T00:00:00Z"


def sku(i: int) -> str:
    return f"AUD-{i:07d}"


def location(j: int) -> str:
    return f"aud-{j:02d}"


def load_ledger(url: str, skus: int) -> None:
    """One ``counted`` movement per position, as seed_grid's counts recorded them."""
    dsn = url.replace("postgresql+psycopg", "postgresql")
    columns = (
        "event_id, namespace, kind, sku, location_id, seq, d_on_hand, d_reserved, on_hand,"
        " reserved, occurred_at, recorded_at"
    )
    with (
        psycopg.connect(dsn) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY stock_movements ({columns}) FROM STDIN") as copy,
    ):
        buffer = io.StringIO()
        for i in range(skus):
            for j in range(LOCATIONS):
                n = i * LOCATIONS + j
                buffer.write(
                    f"{NAMESPACE}/1700000000000-{n}\t{NAMESPACE}\tcounted\t{sku(i)}\t"
                    f"{location(j)}\t{j + 1}\t{ON_HAND}\t0\t{ON_HAND}\t0\t{AT}\t{AT}\n"
                )
            if i % 2_500 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE stock_movements")


async def scan_hgetall(url: str) -> int:
    """The baseline: every position key by SCAN, its fields by pipelined HGETALL."""
    client = Redis.from_url(url, decode_responses=True)
    seen = 0
    try:
        cursor = 0
        pattern = Keys(NAMESPACE).positions_pattern
        while True:
            cursor, keys = await client.scan(cursor, match=pattern, count=SCAN_COUNT)
            async with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                seen += len(await pipe.execute())
            if cursor == 0:
                return seen
    finally:
        await client.aclose()


async def timed_audit(url: str, engine: Engine) -> tuple[float, int, int, int]:
    client = Redis.from_url(url, decode_responses=True)
    store = RedisStockStore(client, Settings(namespace=NAMESPACE))
    try:
        await store.load_library(prune=False)
        started = time.perf_counter()
        report = await audit(store, engine, NAMESPACE)
        seconds = time.perf_counter() - started
    finally:
        await client.aclose()
    return seconds, report.positions, report.in_flight, len(report.drifts)


def sql_fold_seconds(engine: Engine) -> float:
    started = time.perf_counter()
    rows = sum(len(f.on_hand) for page in folded_skus(engine, NAMESPACE) for f in page)
    assert rows > 0
    return time.perf_counter() - started


def run(redis: BenchRedis, positions: int) -> list[Row]:
    why = unreachable()
    if why is not None:
        print(f"    audit: skipped, {why}")
        return []
    skus = math.ceil(positions / LOCATIONS)
    load_s = seed_grid(
        redis.url, [sku(i) for i in range(skus)], [location(j) for j in range(LOCATIONS)], ON_HAND
    )
    with TempDatabase() as db:
        engine = make_engine(db.url)
        try:
            create_tables(engine)
            started = time.monotonic()
            load_ledger(db.url, skus)
            ledger_s = time.monotonic() - started
            base_started = time.perf_counter()
            seen = asyncio.run(scan_hgetall(redis.url))
            base_s = time.perf_counter() - base_started
            sql_s = sql_fold_seconds(engine)
            audit_s, compared, in_flight, drifting = asyncio.run(timed_audit(redis.url, engine))
        finally:
            engine.dispose()
    total = skus * LOCATIONS
    assert (compared, in_flight, drifting) == (total, 0, 0), (compared, in_flight, drifting)
    assert seen == total, seen
    return [
        Row(
            section="audit",
            scenario=f"audit: full audit at {total:,} positions (PostgreSQL ledger)",
            fsync=redis.appendfsync,
            workers=None,
            concurrency="1",
            ops_s=total / audit_s,
            p50_ms=math.nan,
            p99_ms=math.nan,
            baseline="SCAN + pipelined HGETALL of the same keys",
            baseline_ops_s=seen / base_s,
            extra={
                "positions": total,
                "audit_s": round(audit_s, 2),
                "baseline_s": round(base_s, 2),
                "sql_fold_s": round(sql_s, 2),
                "redis_load_s": round(load_s, 1),
                "ledger_copy_s": round(ledger_s, 1),
            },
        )
    ]


def notes(rows: list[Row]) -> list[str]:
    out = []
    for row in rows:
        if row.section == "audit":
            x = row.extra
            out.append(
                f"audit at {x['positions']:,} positions: {x['audit_s']} s (the SQL fold alone "
                f"{x['sql_fold_s']} s, SCAN + pipelined HGETALL alone {x['baseline_s']} s)"
            )
    return out
