"""The result table: printed to stdout and written as bench/results/latest.{json,md}."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).parents[1] / "results"  # bench/results


@dataclass
class Row:
    """One measured scenario, with the same-run baseline it is compared to."""

    section: str  # the --only section that measured it: "ceiling", "http", "open_loop", ...
    scenario: str
    fsync: str
    workers: int | None  # API worker processes; None when no API server is involved
    concurrency: str
    ops_s: float
    p50_ms: float
    p99_ms: float
    baseline: str = ""
    baseline_ops_s: float | None = None
    target: str = ""
    passed: bool | None = None
    errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_ops_s:
            return None
        return self.ops_s / self.baseline_ops_s

    @property
    def cpu_us_op(self) -> float | None:
        """CPU µs per operation over the system's own processes (API, workers, Redis; for the
        peer its API and PostgreSQL), from their CPU rate and the row's ops/s. A steadier
        figure than ops/s on a shared machine: it does not fall when a neighbour takes a core.
        None for rows without an API server (the script and ledger rows)."""
        if "api" not in self.cpu or not self.ops_s:
            return None
        cores = sum(self.cpu.get(role, 0.0) for role in SYSTEM_ROLES) / 100
        return 1e6 * cores / self.ops_s


SYSTEM_ROLES = ("api", "workers", "redis")  # CPU roles that are the system under test
CPU_ROLES = ("api", "workers", "redis", "load", "other", "steal")

COLUMNS = (
    "scenario",
    "fsync",
    "W",
    "conc",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "baseline",
    "base ops/s",
    "ratio",
    "target",
    "err",
    "CPU µs/op",
    "CPU% api/workers/redis/load/other/steal",
)


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _cells(row: Row) -> list[str]:
    ratio = row.ratio
    verdict = "" if row.passed is None else (" PASS" if row.passed else " FAIL")
    cpu = "/".join(_num(row.cpu[k]) if k in row.cpu else "-" for k in CPU_ROLES)
    return [
        row.scenario,
        row.fsync,
        "-" if row.workers is None else str(row.workers),
        row.concurrency,
        _num(row.ops_s),
        _num(row.p50_ms, 2),
        _num(row.p99_ms, 2),
        row.baseline or "-",
        _num(row.baseline_ops_s),
        "-" if ratio is None else f"{ratio:.2f}",
        (row.target + verdict) if row.target else "",
        str(row.errors),
        _num(row.cpu_us_op),
        cpu,
    ]


def render_table(rows: list[Row]) -> str:
    """A pipe table, aligned for the terminal and valid Markdown."""
    table = [list(COLUMNS), *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    numeric = {3, 4, 5, 6, 8, 9, 11, 12}

    def fmt(line: list[str]) -> str:
        cells = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if i in numeric else "-" * (w + 2) for i, w in enumerate(widths)
    )
    return "\n".join([fmt(table[0]), rule + "|", *(fmt(line) for line in table[1:])])


def write_results(
    rows: list[Row],
    notes: list[str],
    meta: dict[str, object],
    directory: Path = RESULTS_DIR,
    targets: str = "",
) -> tuple[Path, Path]:
    """The rows, notes and (``targets``, a Markdown table) the issue's figures, as JSON and
    Markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {
        "meta": meta,
        "notes": notes,
        "rows": [{**asdict(r), "ratio": r.ratio, "cpu_us_op": r.cpu_us_op} for r in rows],
        "targets": targets,
    }
    json_path = directory / "latest.json"
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    md_path = directory / "latest.md"
    meta_lines = [f"- **{k}**: {v}" for k, v in meta.items()]
    md = ["# stocksync benchmark", "", *meta_lines, "", render_table(rows), ""]
    md += [f"- {note}" for note in notes]
    if targets:
        md += ["", "## Targets", "", targets]
    md_path.write_text("\n".join(md) + "\n")
    return json_path, md_path
