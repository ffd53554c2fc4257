"""Report lines for the ledger rows, and the cost of appendfsync always across sections."""

from __future__ import annotations

from collections.abc import Callable

from bench.harness.report import Row


def _ms(value: object) -> str:
    return f"{value:,.1f}" if isinstance(value, int | float) else "?"


def _db_cpu(row: Row) -> str:
    share = row.cpu.get("db")
    return "" if share is None else f" PostgreSQL processes CPU {share:g} % (not in other);"


def ledger_lines(rows: list[Row]) -> list[str]:
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
                f"{row.scenario}: {x['events']:,} events in {x['batches']} batches of"
                f" {x['batch']} in {total:.2f} s; record() (one transaction per batch, p50/p99"
                f" in the table, max {_ms(x['max_batch_ms'])} ms) took"
                f" {100 * float(str(x['sql_share'])):.0f} % of the drain, the rest is"
                f" XREADGROUP/parse/XACK/trim{parts};{_db_cpu(row)}"
                f" {x['movements_written']:,} movements in the table"
            )
        elif row.scenario.startswith("ledger lag"):
            lines.append(
                f"ledger lag [{row.fsync}] over {x['samples']} samples: lag events p50"
                f" {x['lag_events_p50']} / p99 {x['lag_events_p99']} / max {x['lag_events_max']}"
                f"{' (capped: lower bounds)' if x['capped'] else ''}, lag age max"
                f" {_ms(1000 * float(str(x['lag_seconds_max'])))} ms; {x['written']:,} events"
                " written in its slices"
            )
    if any(r.section == "ledger" for r in rows):
        lines.append(
            "ledger rows: drain_once rows time the real writer (batch 500, fresh consumer group)"
            " draining the same outbox into each database, p50/p99 = one batch's SQL"
            " transaction; the baseline inserts as many stock_movements-shaped rows into a"
            " plain table (executemany, 500 per transaction, same engine); fsync column ="
            " the database's commit durability (SQLite synchronous, PostgreSQL"
            " synchronous_commit); load CPU = this process (writer + its SQL thread);"
            " PostgreSQL's processes are measured apart (above), not in other. Lag rows:"
            " p50/p99 = age of the oldest unacknowledged outbox entry (sampled every 0.5 s),"
            " ops/s = ledger rows written per second of load, baseline = reservations"
            " (= outbox events) per second; the ratio swings around 1.00 as the backlog"
            " carries over between slices."
        )
    return lines


def _find(rows: list[Row], fsync: str, match: Callable[[Row], bool]) -> Row | None:
    return next((r for r in rows if r.fsync == fsync and match(r)), None)


def _script(prefix: str, concurrency: str) -> Callable[[Row], bool]:
    def match(row: Row) -> bool:
        return (
            row.section == "script"
            and row.scenario.startswith(prefix)
            and row.concurrency == concurrency
        )

    return match


def fsync_cost(rows: list[Row]) -> str | None:
    """everysec/always throughput ratios wherever a run measured both modes side by side."""
    checks: list[tuple[str, Callable[[Row], bool]]] = []
    for conc in ("1", "32"):
        checks.append((f"script reserve+release conc {conc}", _script("store.", conc)))
        checks.append((f"INCR conc {conc}", _script("INCR", conc)))
    checks.append(
        (
            "HTTP reserve W=2 conc 64",
            lambda r: (
                r.section == "http"
                and r.scenario == "HTTP POST /v1/reservations"
                and r.workers == 2
                and r.concurrency == "64"
            ),
        )
    )
    checks.append(
        (
            "HTTP reserve W=2 conc 64 with ledger writer (lag run, alternating slices)",
            lambda r: r.section == "ledger" and r.scenario.startswith("HTTP POST"),
        )
    )
    found = []
    for label, match in checks:
        always, everysec = _find(rows, "always", match), _find(rows, "everysec", match)
        if always and everysec and always.ops_s:
            found.append(
                f"{label} {everysec.ops_s / always.ops_s:.2f}"
                f" ({everysec.ops_s:,.0f} vs {always.ops_s:,.0f}/s)"
            )
    if not found:
        return None
    return (
        "cost of appendfsync always (everysec ops/s / always ops/s in this run; > 1 = always"
        " is slower): " + "; ".join(found)
    )
