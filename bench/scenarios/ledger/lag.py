"""Ledger lag at saturation: the hot-path load as fast as the API takes it, into each database.

For SQLite and then PostgreSQL (a fresh database; skipped with a note when the server is not
there): ``stocksync serve`` (W=2; the workers in the process serve supervises, so one ledger
writer) on a namespace of its own on the section's Redis (``appendfsync always``), its ledger
in that database. wrk sends single-unit reserves of the hot SKU over CONNECTIONS connections
(the API's rate is flat from 16 to 64 in the ``http`` section: this is past saturation) for
``seconds``, after a warm-up the writer is allowed to catch up from. A thread samples the lag
every 0.5 s (:mod:`bench.harness.lag_sampler`): events behind and the age of the oldest entry not
yet acknowledged. The event rate is the outbox's ``entries-added`` over the load (a little above
wrk's count: requests in flight when it stops are applied too); lag in seconds of traffic = lag
events / that rate. Bounded = the last third's maximum is not above twice the
first third's (or under BOUNDED_FLOOR_S of traffic). When wrk stops, the time to 0 events.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from bench.harness.config import HOT_LOCATION, HOT_SKU, ON_HAND
from bench.harness.lag_sampler import LagSample, LagSampler
from bench.harness.report import RESULTS_DIR, Row
from bench.harness.servers import ApiServer, BenchRedis
from bench.harness.stats import percentile
from bench.load.wrk_runner import WrkResult, run_wrk
from bench.scenarios.ledger.drain import Target, targets
from stocksync.auth.repository import SqlApiKeys
from stocksync.ledger.db import create_tables, make_engine
from stocksync.store.keys import Keys

WORKERS = 2
CONNECTIONS = 128
BUDGET_S = 1.0  # the bound: lag under one second of traffic
DRAIN_BUDGET_S = 5.0  # "drained within seconds"
DRAIN_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 30.0  # after the warm-up, before the measured load
BOUNDED_FLOOR_S = 0.1  # a last third this small is bounded whatever the first third was
SAMPLE_INTERVAL_S = 0.5


@dataclass
class Saturation:
    """One database's run: the load, the lag samples taken during it, and the drain after."""

    target: Target
    wrk: WrkResult
    events_added: int  # outbox entries added during the load
    samples: list[LagSample]
    backlog_at_stop: LagSample
    drain_s: float | None  # None: not drained within DRAIN_TIMEOUT_S
    settle_s: float | None

    @property
    def event_rate(self) -> float:
        return self.events_added / self.wrk.seconds if self.wrk.seconds else 0.0

    def traffic_s(self, events: float) -> float:
        """``events`` in seconds of the load's traffic."""
        return events / self.event_rate if self.event_rate else float("inf")

    def thirds(self) -> tuple[int, int]:
        """The largest lag (events) in the first and in the last third of the load."""
        if not self.samples:
            return 0, 0
        start, end = self.samples[0].at, self.samples[-1].at
        third = (end - start) / 3
        first = [s.events for s in self.samples if s.at <= start + third]
        last = [s.events for s in self.samples if s.at >= end - third]
        return max(first, default=0), max(last, default=0)

    @property
    def bounded(self) -> bool:
        first, last = self.thirds()
        return last <= 2 * first or self.traffic_s(last) <= BOUNDED_FLOOR_S


def api_key(database_url: str) -> str:
    """An all-scopes key in the server's database, created in-process (no CLI start-up)."""
    engine = make_engine(database_url)
    try:
        create_tables(engine)
        key, _ = SqlApiKeys(engine, 0).create("bench", "read,reserve,stock:write,admin")
    finally:
        engine.dispose()
    return key


def entries_added(client: Redis, stream: str) -> int:
    """Entries ever added to the stream (XINFO STREAM; Redis >= 7 and Valkey)."""
    if not client.exists(stream):
        return 0
    return int(client.xinfo_stream(stream)["entries-added"])


def saturate(
    redis: BenchRedis, target: Target, seconds: int, warmup: int, work_dir: Path
) -> Saturation:
    """Serve on ``target``'s ledger, reserve at saturation for ``seconds``, then drain."""
    name = target.name.lower()
    namespace = f"lag{name}"
    data_dir = work_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    key = api_key(target.url)
    log = RESULTS_DIR / "logs" / f"serve-ledger-lag-{name}-w{WORKERS}.log"
    server = ApiServer(redis.url, data_dir, WORKERS, key, keep_log=log, database_url=target.url)
    server.env["STOCKSYNC_NAMESPACE"] = namespace
    stream = Keys(namespace).outbox
    control = Redis.from_url(redis.url, decode_responses=True)
    try:
        with server, LagSampler(redis.url, stream, SAMPLE_INTERVAL_S) as sampler:
            server.seed(HOT_LOCATION, HOT_SKU, ON_HAND)
            run_wrk(server, redis, "reserve.lua", "/v1/reservations", CONNECTIONS, warmup, "warm")
            settle = sampler.wait_caught_up(SETTLE_TIMEOUT_S)
            added = entries_added(control, stream)
            sampler.mode = name
            result = run_wrk(
                server, redis, "reserve.lua", "/v1/reservations", CONNECTIONS, seconds, "lag"
            )
            sampler.mode = None
            backlog = sampler.sample()
            added = entries_added(control, stream) - added
            drain = sampler.wait_caught_up(DRAIN_TIMEOUT_S)
            samples = [s for s in sampler.samples if s.mode == name]
    finally:
        control.close()
    return Saturation(target, result, added, samples, backlog, drain, settle)


def run(
    redis: BenchRedis, seconds: int, warmup: int, notes: list[str]
) -> tuple[list[Row], list[str]]:
    """Rows (reserve rate, lag, trend, drain per database) and notes; ``redis`` runs always."""
    work_dir = redis.dir / "ledger-lag"
    runs: list[Saturation] = []
    with ExitStack() as stack:
        for target in targets(work_dir, stack, notes):
            runs.append(saturate(redis, target, seconds, warmup, work_dir))
    return [row for r in runs for row in rows_of(r)], [note_of(r) for r in runs]


def _ms(values: Sequence[float], q: float) -> float:
    return 1000 * percentile(sorted(values), q)


def rows_of(run: Saturation) -> list[Row]:
    result, name, durability = run.wrk, run.target.name, run.target.durability
    traffic = [run.traffic_s(s.events) for s in run.samples]
    first, last = run.thirds()
    http = Row(
        section="ledger",
        scenario=f"HTTP POST /v1/reservations at saturation (lag run -> {name})",
        fsync="always",
        workers=WORKERS,
        concurrency=str(CONNECTIONS),
        ops_s=result.ok / result.seconds,
        p50_ms=result.percentile(50),
        p99_ms=result.percentile(99),
        errors=result.errors,
        cpu=result.cpu.shares(),
        extra={"seconds": round(result.seconds, 2), "event_rate": round(run.event_rate, 1)},
    )
    lag = Row(
        section="ledger",
        scenario=f"ledger lag at saturation -> {name} (ops/s col: max, ms of traffic)",
        fsync=durability,
        workers=WORKERS,
        concurrency=str(CONNECTIONS),
        ops_s=max(traffic, default=0.0) * 1000,
        p50_ms=_ms(traffic, 50),
        p99_ms=_ms(traffic, 99),
        baseline=f"{BUDGET_S:g} s of traffic",
        baseline_ops_s=BUDGET_S * 1000,
        extra=detail(run),
    )
    trend = Row(
        section="ledger",
        scenario=f"ledger lag trend -> {name} (ops/s col: last third's max, events)",
        fsync=durability,
        workers=WORKERS,
        concurrency=str(CONNECTIONS),
        ops_s=last,
        p50_ms=float("nan"),
        p99_ms=float("nan"),
        baseline="first third's max",
        baseline_ops_s=max(first, 1),
        extra={"first_third_max_events": first, "last_third_max_events": last},
    )
    drain = Row(
        section="ledger",
        scenario=f"ledger drain after saturation -> {name} (ops/s col: ms to 0 events)",
        fsync=durability,
        workers=WORKERS,
        concurrency=str(CONNECTIONS),
        ops_s=1000 * (DRAIN_TIMEOUT_S if run.drain_s is None else run.drain_s),
        p50_ms=float("nan"),
        p99_ms=float("nan"),
        baseline=f"{DRAIN_BUDGET_S:g} s budget",
        baseline_ops_s=DRAIN_BUDGET_S * 1000,
        errors=int(run.drain_s is None),
        extra={
            "drained": run.drain_s is not None,
            "backlog_at_stop_events": run.backlog_at_stop.events,
            "backlog_at_stop_age_s": round(run.backlog_at_stop.seconds, 3),
        },
    )
    return [http, lag, trend, drain]


def detail(run: Saturation) -> dict[str, object]:
    """The raw figures behind the lag row."""
    events = sorted(s.events for s in run.samples)
    ages = sorted(s.seconds for s in run.samples)
    first, last = run.thirds()
    behind = run.backlog_at_stop.events - (run.samples[0].events if run.samples else 0)
    return {
        "samples": len(run.samples),
        "seconds": round(run.wrk.seconds, 2),
        "event_rate": round(run.event_rate, 1),
        "events_added": run.events_added,
        "written_rate": round((run.events_added - behind) / run.wrk.seconds, 1),
        "lag_events_p50": percentile(events, 50),
        "lag_events_p99": percentile(events, 99),
        "lag_events_max": events[-1] if events else None,
        "lag_traffic_s_p99": round(run.traffic_s(percentile(events, 99)), 4),
        "lag_traffic_s_max": round(run.traffic_s(events[-1]), 4) if events else None,
        "lag_age_s_p99": round(percentile(ages, 99), 3),
        "lag_age_s_max": ages[-1] if ages else None,
        "first_third_max_events": first,
        "last_third_max_events": last,
        "bounded": run.bounded,
        "capped": any(s.capped for s in run.samples),
        "drain_s": None if run.drain_s is None else round(run.drain_s, 2),
        "settle_s": None if run.settle_s is None else round(run.settle_s, 2),
    }


def note_of(run: Saturation) -> str:
    x = detail(run)
    drained = (
        f"drained {run.backlog_at_stop.events:,} events in {run.drain_s:.2f} s"
        if run.drain_s is not None
        else f"NOT drained in {DRAIN_TIMEOUT_S:g} s ({run.backlog_at_stop.events:,} behind at stop)"
    )
    return (
        f"ledger lag at saturation -> {run.target.name}: wrk -c{CONNECTIONS} for"
        f" {x['seconds']} s, {run.wrk.ok / run.wrk.seconds:,.0f} reservations/s,"
        f" {x['event_rate']:,} outbox events/s in, {x['written_rate']:,}/s written; lag over"
        f" {x['samples']} samples: events p99 {x['lag_events_p99']} / max {x['lag_events_max']}"
        f"{' (capped: lower bounds)' if x['capped'] else ''}, in seconds of traffic p99"
        f" {x['lag_traffic_s_p99']} / max {x['lag_traffic_s_max']}, oldest unacknowledged"
        f" entry's age p99 {x['lag_age_s_p99']} / max {x['lag_age_s_max']} s; first third max"
        f" {x['first_third_max_events']}, last third max {x['last_third_max_events']}"
        f" ({'bounded' if run.bounded else 'GROWING'}); {drained}; before the load the writer"
        + (" did not settle" if run.settle_s is None else f" settled in {run.settle_s:.1f} s")
    )


def notes(rows: list[Row]) -> list[str]:
    """The explanation of the lag rows (once, when there are any)."""
    if not any(r.section == "ledger" and "at saturation" in r.scenario for r in rows):
        return []
    return [
        f"ledger lag rows: wrk -c{CONNECTIONS} reserves (one outbox event each) against serve"
        f" W={WORKERS} whose workers process runs one ledger writer, each database in turn, the"
        f" lag sampled every {SAMPLE_INTERVAL_S:g} s; lag row: ops/s col = the largest lag in ms"
        " of traffic (lag events / the measured event rate), p50/p99 the same unit, ratio ="
        f" that / {BUDGET_S:g} s (target <= 1); trend row: the last third's largest lag over"
        " the first third's, in events (> 2 = growing); drain row: ms from the load's end"
        f" until 0 events, ratio = that / {DRAIN_BUDGET_S:g} s. Raw figures in the detail"
        " lines above and in latest.json (extra)."
    ]
