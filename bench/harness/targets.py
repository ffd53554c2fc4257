"""Issue 18's table: each figure as measured on 2026-11-28, its target, and this run's value.

Printed after the result table and written with the results, so a closing note can paste it.
A figure this run did not measure (its section was not run) shows "-".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.harness.report import Row

# CPU µs per reservation over every stocksync process (API, workers, Redis), HTTP POST
# /v1/reservations at W=2, 64 connections, appendfsync always: the first measurement
# (2026-11-28, quick profile, a shared and busy 2-core host). The target is a quarter of it.
FIRST_CPU_US_PER_RESERVATION = 1396.0


# rows -> (this run, met?), or None when this run did not measure the figure
Measured = Callable[[list[Row]], tuple[str, bool | None] | None]


@dataclass(frozen=True)
class Figure:
    name: str
    then: str  # as measured on 2026-11-28
    target: str
    measure: Measured


def _find(rows: list[Row], match: Callable[[Row], bool]) -> list[Row]:
    return [r for r in rows if match(r)]


def hot(rows: list[Row]) -> tuple[str, bool | None] | None:
    ours = _find(rows, lambda r: r.section == "hot" and r.scenario.endswith("stocksync"))
    if not ours or ours[0].ratio is None:
        return None
    row, x = ours[0], ours[0].extra
    sold, units = x.get("sold"), x.get("units")
    text = f"{row.ratio:.1f}x, {sold} of {units} sold, {row.concurrency} buyers"
    return text, bool(row.passed)


def spread(rows: list[Row]) -> tuple[str, bool | None] | None:
    ours = _find(rows, lambda r: r.scenario == "spread: stocksync, all ops")
    if not ours or ours[0].ratio is None:
        return None
    return f"{ours[0].ratio:.2f}x", ours[0].ratio >= 3.0


def _reserve_rows(rows: list[Row]) -> list[Row]:
    return _find(
        rows,
        lambda r: (
            r.section == "http"
            and r.scenario == "HTTP POST /v1/reservations"
            and r.fsync == "always"
        ),
    )


def reserve_vs_healthz(rows: list[Row]) -> tuple[str, bool | None] | None:
    found = [r for r in _reserve_rows(rows) if r.ratio is not None]
    if not found:
        return None
    text = ", ".join(f"W={r.workers} {r.ratio:.2f}" for r in found)
    return text, all((r.ratio or 0.0) >= 0.6 for r in found)


def open_loop(rows: list[Row]) -> tuple[str, bool | None] | None:
    found = _find(
        rows,
        lambda r: r.section == "open_loop" and r.workers == 2 and r.concurrency == "1,000/s",
    )
    if not found:
        return None
    row = found[0]
    return f"p99 {row.p99_ms:,.1f} ms, errors {row.errors}", bool(row.passed)


def store_vs_incr(rows: list[Row]) -> tuple[str, bool | None] | None:
    found = _find(rows, lambda r: r.scenario == "store.reserve (reservations)")
    if not found or found[0].ratio is None:
        return None
    row = found[0]
    per_call = row.extra.get("reservations_per_script_call")
    return f"{row.ratio:.2f} ({per_call} reservations per script call)", bool(row.passed)


def redis_us(rows: list[Row]) -> tuple[str, bool | None] | None:
    found = _find(rows, lambda r: r.scenario == "store.reserve (reservations)")
    if not found or found[0].extra.get("redis_usec_per_reservation") is None:
        return None
    x = found[0].extra
    usec = float(str(x["redis_usec_per_reservation"]))
    names = x.get("script_commands")
    commands = "/".join(str(c).upper() for c in names) if isinstance(names, list) else "call"
    text = (
        f"{usec:g} (script {x.get('script_usec_per_call')} µs per {commands};"
        f" server CPU {x.get('redis_cpu_us_per_reservation')} µs)"
    )
    return text, usec <= 25


def bytes_per_position(rows: list[Row]) -> tuple[str, bool | None] | None:
    found = _find(rows, lambda r: r.section == "scale" and "bytes_per_position" in r.extra)
    if not found:
        return None
    row = max(found, key=lambda r: int(str(r.extra["positions"])))
    size = float(str(row.extra["bytes_per_position"]))
    return f"{size:,.0f} at {int(str(row.extra['positions'])):,} positions", size <= 150


def pick_list(rows: list[Row]) -> tuple[str, bool | None] | None:
    found = _find(rows, lambda r: r.scenario.startswith("longest script: pick list"))
    if not found:
        return None
    row = found[0]
    return f"{row.p99_ms:,.1f} ms at {row.extra['carts']:,} carts", bool(row.passed)


def cpu_per_reservation(rows: list[Row]) -> tuple[str, bool | None] | None:
    found = [r for r in _reserve_rows(rows) if r.cpu_us_op is not None]
    if not found:
        return None
    row = max(found, key=lambda r: (r.workers or 0, int(r.concurrency)))
    usec = row.cpu_us_op or 0.0
    text = f"{usec:,.0f} (W={row.workers}, conc {row.concurrency})"
    return text, usec <= FIRST_CPU_US_PER_RESERVATION / 4


FIGURES = (
    Figure(
        "hot SKU, 2,000 buyers / 500 units, vs row-lock peer",
        "2.2x",
        "≥ 10x, exactly 500 sold",
        hot,
    ),
    Figure("spread, all operations, vs row-lock peer", "0.98x", "≥ 3x", spread),
    Figure(
        "`POST /v1/reservations` ÷ `GET /healthz`, same server", "0.22", "≥ 0.6", reserve_vs_healthz
    ),
    Figure("open loop, offered 1,000/s, W=2", "p99 11 s", "p99 < 10 ms", open_loop),
    Figure(
        "store reservations/s at 32 concurrent callers ÷ INCR round trips",
        "0.52",
        "≥ 1.0 (batched)",
        store_vs_incr,
    ),
    Figure("Redis µs per reservation", "56-97", "≤ 25", redis_us),
    Figure("Redis bytes per position at 1M", "290", "≤ 150", bytes_per_position),
    Figure(
        "longest script, pick list with 20,000 carts at one location",
        "163 ms",
        "≤ 1 ms",
        pick_list,
    ),
    Figure(
        "CPU µs per reservation, all processes",
        f"{FIRST_CPU_US_PER_RESERVATION:,.0f} (first measurement)",
        f"≤ {FIRST_CPU_US_PER_RESERVATION / 4:,.0f} (¼ of the first)",
        cpu_per_reservation,
    ),
)


def targets(rows: list[Row], figures: Sequence[Figure] = FIGURES) -> list[dict[str, str]]:
    """One entry per figure: name, 2026-11-28, target, this run, met (yes/no/-)."""
    out = []
    for figure in figures:
        found = figure.measure(rows)
        value, met = found if found is not None else ("-", None)
        out.append(
            {
                "figure": figure.name,
                "2026-11-28": figure.then,
                "target": figure.target,
                "this run": value,
                "met": "-" if met is None else ("yes" if met else "no"),
            }
        )
    return out


def render_targets(entries: list[dict[str, str]]) -> str:
    """A Markdown table of :func:`targets`."""
    if not entries:
        return ""
    columns = list(entries[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(e[c] for c in columns) + " |" for e in entries]
    return "\n".join(lines)
