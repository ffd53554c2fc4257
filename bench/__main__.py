"""``python -m bench [--quick]``: run the benchmark suite and print the result table."""

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
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="stocksync benchmarks: script path vs the Redis ceiling, HTTP path (wrk),"
        " open-loop latency, ledger writer throughput and lag, and against a row-lock peer on"
        " PostgreSQL: hot SKU flash sale, spread load; scale (memory and latency by positions);"
        " connectors: warehouse file import, webhook ingest.",
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


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same path as Ctrl-C: every finally runs


def main(argv: list[str]) -> int:
    from bench import suite
    from bench.harness.config import FULL, QUICK
    from bench.harness.report import render_table, write_results

    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    options = suite.Options(
        profile=QUICK if args.quick else FULL,
        client=args.client,
        procs=args.procs,
        sections=frozenset(args.only or SECTIONS),
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
    json_path, md_path = write_results(outcome.rows, notes, outcome.meta)
    print()
    print(render_table(outcome.rows))
    print()
    for note in notes:
        print(f"- {note}")
    print(f"\nwritten: {json_path} and {md_path}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
