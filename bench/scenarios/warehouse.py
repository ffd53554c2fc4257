"""The ``warehouse`` section: a generated N-row snapshot CSV through ``stocksync connector run
warehouse`` (once mode), against a same-run baseline on the same Redis.

The import and the baseline each run in a subprocess of their own, which reports its peak RSS
(``ru_maxrss``) and CPU time as it exits, so memory shows whether the file is streamed; the
server's CPU over the import is read from ``INFO cpu``. The import's rate is
rows over the import's own time (its summary line), without process start-up. The baseline
writes the same rows as raw pipelined HSETs (2,000 per round trip) after parsing them with
``csv``: what the hardware allows with no as-of rule, idempotency record or outbox event.
"""

from __future__ import annotations

import asyncio
import atexit
import csv
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis

from bench.harness.report import Row
from bench.harness.servers import BenchRedis
from stocksync.config import Settings
from stocksync.domain.model import Location
from stocksync.store.redis_store import RedisStockStore
from stocksync.store.stock_changes import STOCK_ROWS_PER_CALL

LOCATIONS = 100
NAMESPACE = "whbench"
BASELINE_NAMESPACE = "whbase"
PIPELINE_ROWS = 2000
_SUMMARY = re.compile(
    r"(\d+) rows: (\d+) applied, (\d+) stale, (\d+) duplicate, (\d+) rejected "
    r"in ([\d.]+) s"
)


def location_id(i: int) -> str:
    return f"wh-{i:03d}"


def generate(path: Path, rows: int) -> None:
    """A snapshot of ``rows`` positions (SKUs x LOCATIONS), written as a stream."""
    as_of = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    skus = math.ceil(rows / LOCATIONS)
    with path.open("w", buffering=1 << 20) as fh:
        fh.write("sku,location_id,on_hand,as_of\n")
        fh.writelines(
            f"WH-SKU-{n // LOCATIONS:07d},{location_id(n % LOCATIONS)},{n % 97},{as_of}\n"
            for n in range(min(rows, skus * LOCATIONS))
        )


async def _seed(url: str) -> None:
    client = Redis.from_url(url, decode_responses=True)
    try:
        store = RedisStockStore(client, Settings(namespace=NAMESPACE))
        for i in range(LOCATIONS):
            await store.upsert_location(Location(location_id(i), f"WH {i}", "warehouse"))
    finally:
        await client.aclose()


def _child(*args: str, env: dict[str, str] | None = None) -> tuple[str, dict[str, float]]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scenarios.warehouse", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"warehouse bench child {args[0]} failed: {done.stderr[-2000:]}")
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return done.stdout, report


def run(redis: BenchRedis, rows: int, work_dir: Path) -> list[Row]:
    inbox = work_dir / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    snapshot = inbox / "snapshot.csv"
    generate(snapshot, rows)
    generated_s = time.perf_counter() - started
    file_mb = snapshot.stat().st_size / 1e6
    asyncio.run(_seed(redis.url))

    _, base = _child("baseline", redis.url, str(snapshot))
    config = work_dir / "connectors.toml"
    config.write_text(f'[warehouse]\ninbox = "{inbox}"\nsettle_seconds = 0\nonce = true\n')
    env = {
        **os.environ,
        "STOCKSYNC_REDIS_URL": redis.url,
        "STOCKSYNC_NAMESPACE": NAMESPACE,
        "STOCKSYNC_DATA_DIR": str(work_dir),
    }
    cpu_before = _server_cpu_s(redis)
    out, imported = _child("import", "--config", str(config), env=env)
    server_cpu_s = _server_cpu_s(redis) - cpu_before
    found = _SUMMARY.search(out)
    if found is None:
        raise RuntimeError(f"no summary in the import's output: {out[-2000:]}")
    total, applied, stale, duplicate, rejected = (int(v) for v in found.groups()[:5])
    seconds = float(found.group(6))
    return [
        Row(
            section="warehouse",
            scenario=f"warehouse import, {total:,}-row snapshot CSV",
            fsync=redis.appendfsync,
            workers=None,
            concurrency=f"4x{STOCK_ROWS_PER_CALL}",  # batched calls in flight x rows per call
            ops_s=total / seconds,
            p50_ms=math.nan,
            p99_ms=math.nan,
            baseline="csv + pipelined HSET",
            baseline_ops_s=rows / base["seconds"],
            errors=rejected,
            extra={
                "rows": total,
                "applied": applied,
                "stale": stale,
                "duplicate": duplicate,
                "seconds": round(seconds, 1),
                "file_mb": round(file_mb, 1),
                "generate_s": round(generated_s, 1),
                "peak_rss_mb": round(imported["maxrss_mb"], 1),
                # CPU per row: the import process (start-up included) and the server
                "import_cpu_us_per_row": round(imported["cpu_s"] / total * 1e6, 1),
                "server_cpu_us_per_row": round(server_cpu_s / total * 1e6, 1),
                "baseline_peak_rss_mb": round(base["maxrss_mb"], 1),
            },
        )
    ]


def notes(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        if row.section != "warehouse":
            continue
        x = row.extra
        lines.append(
            f"warehouse import: {x['rows']:,} rows ({x['file_mb']} MB CSV, generated in"
            f" {x['generate_s']} s) in {x['seconds']} s: {x['applied']:,} applied, {x['stale']}"
            f" stale, {row.errors} rejected; peak RSS {x['peak_rss_mb']} MB (baseline process"
            f" {x['baseline_peak_rss_mb']} MB): the file is streamed, not loaded. Rows go in"
            f" batched stock_changes calls of {STOCK_ROWS_PER_CALL} (each row with its as-of"
            " rule, idempotency record and outbox event), 4 calls in flight; CPU per row:"
            f" import {x['import_cpu_us_per_row']} µs, server {x['server_cpu_us_per_row']} µs."
        )
    return lines


# -- the subprocesses ---------------------------------------------------------------------


def _report_peak_rss(extra: dict[str, float]) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime
    report = {**extra, "maxrss_mb": usage.ru_maxrss / 1024, "cpu_s": cpu_s}  # maxrss: KiB
    print(json.dumps(report), file=sys.stderr, flush=True)


def _server_cpu_s(redis: BenchRedis) -> float:
    cpu = redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])  # type: ignore[arg-type]


async def _baseline(url: str, path: Path) -> float:
    client = Redis.from_url(url)
    started = time.perf_counter()
    try:
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            pipe = client.pipeline(transaction=False)
            for n, (sku, loc, on_hand, as_of) in enumerate(reader, 1):
                pipe.hset(
                    f"{BASELINE_NAMESPACE}:pos:{loc}:{sku}",
                    mapping={"on_hand": on_hand, "count_as_of": as_of},
                )
                if n % PIPELINE_ROWS == 0:
                    await pipe.execute()
            await pipe.execute()
    finally:
        await client.aclose()
    return time.perf_counter() - started


def main(argv: list[str]) -> None:
    if argv[0] == "baseline":
        seconds = asyncio.run(_baseline(argv[1], Path(argv[2])))
        _report_peak_rss({"seconds": seconds})
        return
    from stocksync.cli.main import app

    atexit.register(_report_peak_rss, {})  # typer exits through sys.exit: atexit still runs
    app(["connector", "run", "warehouse", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])
