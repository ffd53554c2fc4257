"""A ledger at volume in PostgreSQL: load movements with COPY, then EXPLAIN the read queries.

``python -m bench.scenarios.ledger_volume [movements]`` creates a throw-away database, loads
``movements`` rows (default 1,000,000: 100,000 positions of 10 movements each, a hold and a
release per reservation), ANALYZEs, prints the table and index sizes and the key lines of
``EXPLAIN (ANALYZE, BUFFERS)`` of every query the history, audit, rebuild and regression check
run, and drops the database. docs/ledger-at-volume.md holds a run's output.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Select, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from bench.harness.pg import TempDatabase
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.queries import MOVEMENTS, folded_positions_statement, max_seqs_statement
from stocksync.ledger.sql_ledger import latest_positions_statement

NAMESPACE = "default"
LOCATIONS = 20
PER_POSITION = 10  # movements: a count, then held/released pairs and a sale
COLUMNS = (
    "event_id, namespace, kind, sku, location_id, seq, reservation_id, channel, qty, "
    "d_on_hand, d_reserved, on_hand, reserved, occurred_at, recorded_at"
)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def movement_rows(movements: int, namespace: str = NAMESPACE) -> Iterator[str]:
    """COPY text lines: per position a count, then holds released, then a sale."""
    positions = movements // PER_POSITION
    stream_ms = int(EPOCH.timestamp() * 1000)
    seqs: dict[int, int] = {}
    for p in range(positions):
        sku_i, loc = divmod(p, LOCATIONS)
        sku, location = f"SKU-{sku_i:07d}", f"loc-{loc:02d}"
        on_hand, reserved = 100, 0
        for k in range(PER_POSITION):
            seq = seqs[sku_i] = seqs.get(sku_i, 0) + 1
            stream_ms += 1
            at = EPOCH + timedelta(seconds=p * 10 + k)
            res, qty, d_on, d_res = r"\N", r"\N", 0, 0
            if k == 0:
                kind, d_on = "counted", 100
            elif k == PER_POSITION - 1:
                kind, res, qty, d_on = "adjusted", r"\N", "1", -1
            else:
                res = f"r-{p}-{(k + 1) // 2}"
                kind, qty = ("held", "1") if k % 2 else ("released", "1")
                d_res = 1 if k % 2 else -1
            on_hand += d_on if k else 0
            reserved += d_res
            yield (
                "\t".join(
                    (
                        f"{namespace}/{stream_ms}-0",
                        namespace,
                        kind,
                        sku,
                        location,
                        str(seq),
                        res,
                        "web" if res != r"\N" else r"\N",
                        qty,
                        str(d_on),
                        str(d_res),
                        str(on_hand),
                        str(reserved),
                        at.isoformat(),
                        at.isoformat(),
                    )
                )
                + "\n"
            )


def load(url: str, movements: int) -> float:
    """COPY ``movements`` rows into stock_movements; returns the seconds taken."""
    started = time.monotonic()
    dsn = url.replace("postgresql+psycopg", "postgresql")
    with (
        psycopg.connect(dsn) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY stock_movements ({COLUMNS}) FROM STDIN") as cp,
    ):
        buffer = io.StringIO()
        for i, line in enumerate(movement_rows(movements), 1):
            buffer.write(line)
            if i % 50_000 == 0:
                cp.write(buffer.getvalue())
                buffer = io.StringIO()
        cp.write(buffer.getvalue())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE stock_movements")  # visibility map: index-only scans
    return time.monotonic() - started


def sizes(engine: Engine) -> dict[str, int]:
    """Bytes of the table (heap + TOAST) and of each of its indexes."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT 'table' AS name, pg_table_size('stock_movements') AS bytes UNION ALL "
                "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
                "WHERE indrelid = 'stock_movements'::regclass"
            )
        ).all()
    return {str(name): int(size) for name, size in rows}


def sql(stmt: Select[Any]) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def queries() -> dict[str, str]:
    """The read queries of the history, audit, rebuild and regression check, as SQL."""
    m = MOVEMENTS
    ns, sku, loc = NAMESPACE, "SKU-0002500", "loc-07"
    return {
        "history: a position's movements, newest first (stock history endpoint)": sql(
            select(m)
            .where(m.c.namespace == ns, m.c.sku == sku, m.c.location_id == loc)
            .order_by(m.c.seq.desc())
            .limit(50)
        ),
        "history: a reservation's hold movements (GET /v1/reservations/{id})": sql(
            select(m.c.details).where(
                m.c.namespace == ns, m.c.reservation_id == "r-50007-2", m.c.kind == "held"
            )
        ),
        "rebuild: one SKU's movements in seq order": sql(
            select(m).where(m.c.namespace == ns, m.c.sku == sku).order_by(m.c.seq)
        ),
        "rebuild: latest movement per position (SqlLedger.positions)": sql(
            latest_positions_statement(ns)
        ),
        "regression check: max seq per SKU (streamed)": sql(max_seqs_statement(ns)),
        "audit: fold per position joined with seq coverage per SKU (streamed)": sql(
            folded_positions_statement(ns)
        ),
        "start-up guard: newest event id of the namespace": sql(
            select(m.c.event_id).where(m.c.namespace == ns).order_by(m.c.event_id.desc()).limit(1)
        ),
    }


def explain(engine: Engine, sql: str) -> list[str]:
    """The plan's node lines (index or scan used) and its execution time."""
    with engine.connect() as conn:
        plan = [
            str(r[0])
            for r in conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql.replace("%", "%%")))
        ]
    keep = ("Scan", "Aggregate", "Sort ", "Join", "Limit", "Execution Time", "Buffers: shared")
    return [line.rstrip() for line in plan if any(k in line for k in keep)][:14]


def main(movements: int) -> None:
    with TempDatabase() as db:
        engine = make_engine(db.url)
        create_tables(engine)
        seconds = load(db.url, movements)
        print(f"loaded {movements:,} movements with COPY in {seconds:.1f} s")
        measured = sizes(engine)
        for name, size in measured.items():
            print(f"  {name}: {size / 2**20:.1f} MiB, {size / movements:.0f} B per movement")
        print(f"  total: {sum(measured.values()) / movements:.0f} B per movement")
        for title, statement in queries().items():
            print(f"\n## {title}\n")
            for line in explain(engine, statement):
                print("    " + line)
        engine.dispose()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
