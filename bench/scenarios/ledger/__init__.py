"""The ``ledger`` section: the writer's throughput (:mod:`.drain`) and its lag with the API at
saturation (:mod:`.lag`), run in turn on one Redis of their own; here, the report lines for their
rows."""

from __future__ import annotations

from bench.harness.report import Row
from bench.scenarios.ledger import drain, lag

__all__ = ["drain", "lag", "notes"]


def _ms(value: object) -> str:
    return f"{value:,.1f}" if isinstance(value, int | float) else "?"


def _db_cpu(row: Row) -> str:
    share = row.cpu.get("db")
    return "" if share is None else f" PostgreSQL processes CPU {share:g} % (not in other);"


def notes(rows: list[Row]) -> list[str]:
    lines = []
    for row in rows:
        x = row.extra
        if row.section != "ledger":
            continue
        if row.scenario.startswith("raw INSERT") and "db" in row.cpu:
            lines.append(f"{row.scenario}: {x['rows']:,} rows;{_db_cpu(row)[:-1]}")
        if row.scenario.startswith("ledger drain_once"):
            total = float(str(x["seconds"]))
            statements = x.get("statement_seconds")
            parts = ""
            if isinstance(statements, dict) and total:
                top = sorted(statements.items(), key=lambda kv: -kv[1])[:3]
                parts = (
                    "; cursor time by statement: "
                    + ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in top)
                    + " of the drain (the rest of record() is Python: SQLAlchemy, fold; and COMMIT)"
                )
            lines.append(
                f"{row.scenario}: {x['events']:,} events in {x['batches']} batches (first read"
                f" {x['batch']}, adaptive up to 5,000) in {total:.2f} s; record() (one"
                " transaction per batch, p50/p99"
                f" in the table, max {_ms(x['max_batch_ms'])} ms) took"
                f" {100 * float(str(x['sql_share'])):.0f} % of the drain, the rest is"
                f" XREADGROUP/parse/XACK/trim{parts};{_db_cpu(row)}"
                f" {x['movements_written']:,} movements in the table"
            )
    if any(r.section == "ledger" for r in rows):
        lines.append(
            "ledger rows: drain_once rows time the real writer (adaptive batch from 500,"
            " fresh consumer group)"
            " draining the same outbox into each database, p50/p99 = one batch's SQL"
            " transaction; the baseline inserts as many stock_movements-shaped rows into a"
            " plain table (executemany, 500 per transaction, same engine); fsync column ="
            " the database's commit durability (SQLite synchronous, PostgreSQL"
            " synchronous_commit); load CPU = this process (writer + its SQL thread);"
            " PostgreSQL's processes are measured apart (above), not in other."
        )
    return lines + lag.notes(rows)
