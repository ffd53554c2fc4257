"""Issue 12's table (the ledger and the bulk paths): each figure as the issue measured it on
2026-11-28, its target, and this run's value. Rendered like issue 18's (:mod:`.targets`)."""

from __future__ import annotations

from bench.harness.report import Row
from bench.harness.targets import Figure, Measured

AUDIT_SECONDS_MAX = 10.0  # "a full audit finishes in seconds" at 1,000,000 positions


def _one(rows: list[Row], scenario: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario), None)


def _drain(database: str, target: float) -> Measured:
    def measure(rows: list[Row]) -> tuple[str, bool | None] | None:
        row = _one(rows, f"ledger drain_once -> {database}")
        if row is None or row.ratio is None:
            return None
        return f"{row.ratio:.2f}x ({row.ops_s:,.0f} events/s)", row.ratio >= target

    return measure


def _lag(database: str) -> Measured:
    def measure(rows: list[Row]) -> tuple[str, bool | None] | None:
        lag = _one(rows, f"ledger lag at saturation -> {database} (ops/s col: max, ms of traffic)")
        drain = _one(
            rows, f"ledger drain after saturation -> {database} (ops/s col: ms to 0 events)"
        )
        if lag is None or drain is None or lag.ratio is None or drain.ratio is None:
            return None
        rate = lag.extra.get("event_rate") or lag.extra.get("events_per_s")
        text = f"max {lag.ops_s / 1000:.2f} s of traffic, drained in {drain.ops_s / 1000:.1f} s"
        if rate:
            text += f" (at {float(str(rate)):,.0f} events/s)"
        return text, lag.ratio <= 1.0 and drain.ratio <= 1.0

    return measure


def fulfil_latency(rows: list[Row]) -> tuple[str, bool | None] | None:
    row = _one(rows, "spread: stocksync, fulfill latency ÷ reserve")
    if row is None:
        return None
    p50, p99 = row.extra.get("fulfill_p50_ratio"), row.extra.get("fulfill_p99_ratio")
    return f"p50 {p50}x, p99 {p99}x", bool(row.passed)


def warehouse(rows: list[Row]) -> tuple[str, bool | None] | None:
    row = next((r for r in rows if r.section == "warehouse" and r.ratio is not None), None)
    if row is None or row.ratio is None:
        return None
    text = f"{row.ratio:.2f}x ({row.ops_s:,.0f} rows/s, peak RSS {row.extra.get('peak_rss_mb')} MB)"
    return text, row.ratio >= 0.5


def webhook(rows: list[Row]) -> tuple[str, bool | None] | None:
    row = _one(rows, "webhook orders/create (reserve+confirm)")
    if row is None or row.ratio is None:
        return None
    return f"{row.ratio:.2f}x", row.ratio >= 0.75


def audit(rows: list[Row]) -> tuple[str, bool | None] | None:
    row = next((r for r in rows if r.section == "audit"), None)
    if row is None or row.ratio is None:
        return None
    seconds = float(str(row.extra["audit_s"]))
    text = (
        f"{seconds:.1f} s at {int(str(row.extra['positions'])):,} ({row.ratio:.2f}x SCAN+HGETALL)"
    )
    return text, seconds <= AUDIT_SECONDS_MAX


FIGURES = (
    Figure(
        "ledger drain -> PostgreSQL ÷ raw executemany", "0.19x", "≥ 1.0x", _drain("PostgreSQL", 1.0)
    ),
    Figure("ledger drain -> SQLite ÷ raw executemany", "0.16x", "≥ 0.6x", _drain("SQLite", 0.6)),
    Figure(
        "ledger lag, reserves at saturation 60 s -> SQLite",
        "not measured at saturation",
        "< 1 s of traffic, drained ≤ 5 s",
        _lag("SQLite"),
    ),
    Figure(
        "ledger lag, reserves at saturation 60 s -> PostgreSQL",
        "not measured at saturation",
        "< 1 s of traffic, drained ≤ 5 s",
        _lag("PostgreSQL"),
    ),
    Figure(
        "spread: fulfil latency ÷ reserve latency", "p50 4.2x (300 / 71 ms)", "≤ 2x", fulfil_latency
    ),
    Figure("warehouse import ÷ CSV + pipelined HSET", "0.14x", "≥ 0.5x", warehouse),
    Figure(
        "order webhook (reserve + confirm) ÷ plain reservation",
        "0.75x",
        "≥ 0.75x (no loss)",
        webhook,
    ),
    Figure(
        "full audit at 1,000,000 positions",
        "one round trip per SKU",
        f"≤ {AUDIT_SECONDS_MAX:g} s",
        audit,
    ),
)
