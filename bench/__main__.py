"""``python -m bench [--quick] [--only SECTION]``: check for wrk, run, print the result table."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

SECTIONS = (
    "ceiling",
    "http",
    "open_loop",
    "ledger",
    "hot",
    "spread",
    "scale",
    "warehouse",
    "webhooks",
    "audit",
    "cluster",
    "pools",
    "propagation",
)
WRK_SECTIONS = frozenset({"http", "ledger", "hot"})  # the sections that run wrk


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="stocksync benchmarks: script path vs the Redis ceiling, HTTP path (wrk),"
        " open-loop latency, ledger writer throughput and lag, and against a row-lock peer on"
        " PostgreSQL: hot SKU flash sale, spread load; scale (memory and latency by positions);"
        " connectors: warehouse file import, webhook ingest; audit at scale; store.reserve on a"
        " standalone server vs Valkey Clusters of 1, 2 and 3 primaries.",
        epilog=f"The {_listed(WRK_SECTIONS)} sections run wrk (apt-get install wrk).",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, ~1.5 min")
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run only these sections (repeatable)",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="open-loop generator client (default: raw asyncio HTTP/1.1 keep-alive)",
    )
    parser.add_argument("--procs", type=int, default=4, help="open-loop generator processes")
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="where Redis keeps its AOF (default: TMPDIR)"
    )
    return parser.parse_args(argv)


def _listed(sections: frozenset[str]) -> str:
    """Section names in run order: "a", "a and b", "a, b and c"."""
    names = [s for s in SECTIONS if s in sections]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def wrk_refusal(sections: frozenset[str]) -> str | None:
    """Why the run must not start (wrk missing while a chosen section runs it), or None."""
    from bench.load import wrk_runner

    needing = sections & WRK_SECTIONS
    if not needing or wrk_runner.find_wrk() is not None:
        return None
    without = " ".join(f"--only {s}" for s in SECTIONS if s not in WRK_SECTIONS)
    which = "section runs" if len(needing) == 1 else "sections run"
    return (
        f"wrk is not installed, and the {_listed(needing)} {which} it. Install it first"
        f" (Debian/Ubuntu: apt-get install wrk), or leave out what needs it: python -m bench"
        f" {without}"
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same path as Ctrl-C: every finally runs


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sections = frozenset(args.only or SECTIONS)
    refusal = wrk_refusal(sections)
    if refusal:  # before any server starts: a missing tool should not cost a half-run
        print(refusal, file=sys.stderr)
        return 1

    from bench import suite
    from bench.harness import ledger_targets
    from bench.harness.config import FULL, QUICK
    from bench.harness.report import render_table, write_results
    from bench.harness.targets import render_targets, targets

    signal.signal(signal.SIGTERM, _interrupt)
    options = suite.Options(
        profile=QUICK if args.quick else FULL,
        client=args.client,
        procs=args.procs,
        sections=sections,
        tmp_dir=args.tmp_dir,
    )
    outcome = suite.Outcome()
    status = 0
    try:
        suite.run(options, outcome)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped; partial results follow", file=sys.stderr)
        status = 130
    except Exception as exc:  # report what was measured before the failure
        print(f"\nbenchmark failed: {exc!r}; servers stopped", file=sys.stderr)
        if not outcome.rows:
            raise
        status = 1
    if not outcome.rows:
        return status or 1
    notes = suite.notes(outcome)
    figures = (
        "issue 18's figures (2026-11-28, target, this run):\n\n"
        + render_targets(targets(outcome.rows))
        + "\n\nissue 12's figures (the ledger and bulk paths; 2026-11-28, target, this run):\n\n"
        + render_targets(targets(outcome.rows, ledger_targets.FIGURES))
    )
    json_path, md_path = write_results(outcome.rows, notes, outcome.meta, targets=figures)
    print()
    print(render_table(outcome.rows))
    print()
    for note in notes:
        print(f"- {note}")
    print(f"\n{figures}")
    print(f"\nwritten: {json_path} and {md_path}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
