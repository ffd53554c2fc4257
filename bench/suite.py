"""Runs the chosen sections in order, with their servers, always stopping what it started; and
writes the notes under the result table, the cross-section ones (ceiling, cost of fsync) too."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness.config import HOT_LOCATION, HOT_SKU, ON_HAND, Profile
from bench.harness.cpu import CORES
from bench.harness.report import RESULTS_DIR, Row
from bench.harness.servers import ApiServer, BenchRedis, create_api_key
from bench.load import wrk_runner
from bench.scenarios import (
    audit,
    ceiling,
    ceiling_picklist,
    ceiling_reserve,
    cluster,
    hot,
    http,
    ledger,
    open_loop,
    pools,
    propagation,
    scale,
    spread,
    warehouse,
    webhooks,
)
from stocksync.store.connection import server_version


def server_name(info: dict[str, object]) -> str:
    """ "valkey 8.1.8" or "redis 7.0.15": Valkey reports a redis_version of 7.2.4 too."""
    name, version = server_version(info)
    return f"{name} {'.'.join(map(str, version))}"


@dataclass(frozen=True)
class Options:
    profile: Profile
    client: str  # open-loop generator client: "raw" | "httpx"
    procs: int  # open-loop generator processes
    sections: frozenset[str]  # see bench.__main__.SECTIONS
    tmp_dir: Path | None


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    meta: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # found while running (e.g. a skipped DB)


class Redises:
    """One EmbeddedRedis per appendfsync mode, started on first use, stopped with the stack."""

    def __init__(self, stack: ExitStack, tmp_dir: Path | None) -> None:
        self.stack = stack
        self.tmp_dir = tmp_dir
        self.started: dict[str, BenchRedis] = {}
        self.keys: dict[str, str] = {}

    def get(self, fsync: str) -> BenchRedis:
        if fsync not in self.started:
            self.started[fsync] = self.stack.enter_context(BenchRedis(fsync, self.tmp_dir))
        return self.started[fsync]

    def api(self, fsync: str, workers: int) -> ApiServer:
        """An API server (not yet started) on this Redis, sharing one data dir and key."""
        redis = self.get(fsync)
        data_dir = redis.dir / "api"
        if fsync not in self.keys:
            self.keys[fsync] = create_api_key(redis.url, data_dir)
        log = RESULTS_DIR / "logs" / f"serve-{fsync}-w{workers}.log"
        return ApiServer(redis.url, data_dir, workers, self.keys[fsync], keep_log=log)

    def version(self) -> object:
        for redis in self.started.values():
            return server_name(redis.info("server"))
        return None


def run(options: Options, outcome: Outcome) -> None:
    """Fill ``outcome`` as scenarios finish (so an interrupted run still reports what it has)."""
    outcome.meta.update(environment(options))
    started = time.monotonic()
    with ExitStack() as stack:
        redises = Redises(stack, options.tmp_dir)
        if "ceiling" in options.sections:
            ceiling_section(redises, options, outcome)
        api_sections(redises, options, outcome)
        if "hot" in options.sections:
            hot_section(redises, options, outcome)
        if "spread" in options.sections:
            spread_section(redises, options, outcome)
        if "scale" in options.sections:
            scale_section(stack, options, outcome)
        if "ledger" in options.sections:
            ledger_section(stack, options, outcome)
        if "warehouse" in options.sections:
            warehouse_section(stack, options, outcome)
        if "webhooks" in options.sections:
            log("webhooks: Shopify orders/create vs POST /v1/reservations")
            rows, found = webhooks.run(stack, options.profile, options.tmp_dir)
            outcome.rows += rows
            outcome.notes += found
        if "audit" in options.sections:
            audit_section(stack, options, outcome)
        if "cluster" in options.sections:
            log("cluster: store.reserve on a standalone server vs clusters of 1, 2, 3 primaries")
            outcome.rows += cluster.run(options.profile, options.tmp_dir, log)
            outcome.meta.setdefault("redis_version", cluster.server_version())
        if "pools" in options.sections:
            outcome.rows += pools.run(options.profile, options.tmp_dir, log)
        if "propagation" in options.sections:
            outcome.rows += propagation.run(options.profile, options.tmp_dir, log)
        outcome.meta["redis_version"] = redises.version() or outcome.meta.get("redis_version")
    outcome.meta["duration_s"] = round(time.monotonic() - started, 1)


def ceiling_section(redises: Redises, options: Options, outcome: Outcome) -> None:
    profile = options.profile
    for fsync in profile.script_fsyncs:
        log(f"ceiling: script path vs INCR, appendfsync {fsync}")
        outcome.rows += ceiling.run(redises.get(fsync), profile)
    log(f"ceiling: store.reserve vs INCR, {profile.reserve_concurrency} concurrent callers")
    outcome.rows += ceiling_reserve.run(redises.get("always"), profile)
    log(f"ceiling: longest pick list script, {profile.picklist_carts:,} carts at one location")
    outcome.rows.append(ceiling_picklist.run(redises.get("always"), profile))


def api_sections(redises: Redises, options: Options, outcome: Outcome) -> None:
    """http and open_loop on an ``always`` Redis per worker count, then http on ``everysec``."""
    profile, sections = options.profile, options.sections
    workers_needed = set(profile.http_workers if "http" in sections else ())
    workers_needed |= set(profile.open_loop_workers if "open_loop" in sections else ())
    for workers in sorted(workers_needed):
        redis = redises.get("always")
        with redises.api("always", workers) as server:
            server.seed(HOT_LOCATION, HOT_SKU, ON_HAND)
            log(f"    API up on {server.base_url}, workers={workers}")
            if "http" in sections and workers in profile.http_workers:
                log(f"http: HTTP path with wrk, workers={workers}")
                outcome.rows += http.run(server, redis, profile, "a")
            if "open_loop" in sections and workers in profile.open_loop_workers:
                for rate in profile.open_loop_rates:
                    log(f"open_loop: open loop at {rate}/s, workers={workers}")
                    row = open_loop.run(server, redis, profile, rate, options.client, options.procs)
                    outcome.rows.append(row)
    if "http" in sections and profile.http_everysec:
        workers = max(profile.http_workers)
        with redises.api("everysec", workers) as server:
            server.seed(HOT_LOCATION, HOT_SKU, ON_HAND)
            log(f"http: HTTP path with wrk, workers={workers}, appendfsync everysec")
            bench = http.HttpBench(server, redises.get("everysec"), profile, "e")
            bench.warm_up()
            outcome.rows += bench.reserve(max(profile.http_concurrency))


def hot_section(redises: Redises, options: Options, outcome: Outcome) -> None:
    profile = options.profile
    log(f"hot: hot SKU flash sale, stocksync and the row-lock peer, workers={profile.hot_workers}")
    rows, _ = hot.run(
        lambda: redises.api("always", profile.hot_workers),
        redises.get("always"),
        profile.hot_workers,
        profile.hot_units,
        profile.hot_connections,
        profile.hot_max_seconds,
        log,
        outcome.notes,
    )
    outcome.rows += rows


def spread_section(redises: Redises, options: Options, outcome: Outcome) -> None:
    profile = options.profile
    log(
        f"spread: spread load, {profile.spread_skus:,} SKUs x {profile.spread_locations} locations,"
        " stocksync and the row-lock peer"
    )
    outcome.rows += spread.run(
        lambda: redises.api("always", profile.hot_workers),
        redises.get("always"),
        profile,
        log,
        outcome.notes,
    )


def scale_section(stack: ExitStack, options: Options, outcome: Outcome) -> None:
    """On a Redis of its own, so memory deltas are the positions' and holds' alone."""
    profile = options.profile
    log(f"scale: {', '.join(f'{n:,}' for n in profile.scale_positions)} positions")
    redis = stack.enter_context(BenchRedis("always", options.tmp_dir))
    outcome.meta.setdefault("redis_version", server_name(redis.info("server")))
    outcome.rows += scale.run(redis, profile, log)


def ledger_section(stack: ExitStack, options: Options, outcome: Outcome) -> None:
    """Drain, then lag, on a Redis of their own (appendfsync always): a clean outbox and ledger."""
    profile = options.profile
    redis = stack.enter_context(BenchRedis("always", options.tmp_dir))
    outcome.meta.setdefault("redis_version", server_name(redis.info("server")))
    log(f"ledger: writer throughput, {profile.ledger_events:,} outbox events")
    outcome.rows += ledger.drain.run(redis, profile.ledger_events, outcome.notes)
    log(f"ledger: lag with the API at saturation, {profile.ledger_lag_seconds} s per database")
    rows, notes = ledger.lag.run(
        redis, profile.ledger_lag_seconds, profile.wrk_warmup_seconds, outcome.notes
    )
    outcome.rows += rows
    outcome.notes += notes


def warehouse_section(stack: ExitStack, options: Options, outcome: Outcome) -> None:
    """On a Redis of its own (appendfsync always), its files in that Redis's temp dir."""
    redis = stack.enter_context(BenchRedis("always", options.tmp_dir))
    outcome.meta.setdefault("redis_version", server_name(redis.info("server")))
    log(f"warehouse: snapshot import, {options.profile.warehouse_rows:,} rows")
    outcome.rows += warehouse.run(redis, options.profile.warehouse_rows, redis.dir / "warehouse")


def audit_section(stack: ExitStack, options: Options, outcome: Outcome) -> None:
    """On a Redis of its own, with a throw-away PostgreSQL ledger."""
    redis = stack.enter_context(BenchRedis("always", options.tmp_dir))
    outcome.meta.setdefault("redis_version", server_name(redis.info("server")))
    log(f"audit: full audit at {options.profile.audit_positions:,} positions")
    outcome.rows += audit.run(redis, options.profile.audit_positions)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def environment(options: Options) -> dict[str, object]:
    return {
        "profile": options.profile.name,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "cores": CORES,
        "loadavg_at_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "python": platform.python_version(),
        "open_loop_generator": f"{options.client} asyncio client x {options.procs} processes",
        "data_fs": filesystem(options.tmp_dir or Path(os.environ.get("TMPDIR", "/tmp"))),
        "git": git_describe(),
        "server_logs": str(RESULTS_DIR / "logs"),
    }


def filesystem(path: Path) -> str:
    """The filesystem type holding ``path`` (tmpfs would make fsync free)."""
    best, kind = "", "?"
    target = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if target.startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return f"{kind} ({best})"


def git_describe() -> str:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).parent,
        )
    except OSError:
        return "?"
    return done.stdout.decode().strip() or "?"


def notes(outcome: Outcome) -> list[str]:
    """Explanations and the per-row details that do not fit the table."""
    meta = outcome.meta
    lines = [
        "setup: "
        + ", ".join(f"{k}={meta[k]}" for k in ("profile", "cores", "loadavg_at_start") if k in meta)
        + f", server {meta.get('redis_version')}, AOF on {meta.get('data_fs')}"
        + f", run took {meta.get('duration_s', '?')} s",
        "ratio = ops/s / baseline ops/s, both measured in this run on this machine; trust ratios"
        " over absolute numbers (shared, noisy 2-core host).",
        "CPU% = percent of one core (200 = both): api = uvicorn process(es), workers = the"
        " workers process serve supervises, redis = the Valkey server, load = the load generator"
        " (this process for script rows, wrk, or the open-loop processes), other = everything"
        " else busy on the machine, steal = taken by the hypervisor. CPU µs/op = (api + workers"
        " + redis) CPU per operation of the row (for the peer: its API and PostgreSQL).",
    ]
    for row in outcome.rows:
        where = f"[{row.fsync}, conc {row.concurrency}]"
        if row.section == "ceiling" and "pairs_s" in row.extra:
            lines.append(
                f"script {where}: {row.extra['pairs_s']:,} reserve+release pairs/s;"
                f" Redis-side µs/call: FCALL {row.extra.get('redis_usec_per_call')},"
                f" per store call {row.extra.get('redis_usec_per_op')}"
            )
        elif row.section == "ceiling" and "redis_usec_per_reservation" in row.extra:
            x = row.extra
            lines.append(
                f"store.reserve {where}: {x['reservations']:,} reservations after the stats reset,"
                f" {x['reservations_per_script_call']} per script call"
                f" ({x['script_commands']}); Redis µs per reservation"
                f" {x['redis_usec_per_reservation']} (commandstats: the script calls' time over"
                f" the reservations), script µs/call {x['script_usec_per_call']}, redis-server"
                f" CPU µs per reservation {x.get('redis_cpu_us_per_reservation')}"
            )
        elif row.section == "ceiling" and "longest_us" in row.extra:
            x = row.extra
            lines.append(
                f"pick list: {x['carts']:,} active web holds at one location (seeded through"
                f" store.reserve in {x['seed_s']} s); longest SLOWLOG entry (every command"
                f" logged) in µs: {x['longest_us']} (staff = confirmed+ready, the pick list's"
                " default; held = the carts themselves)"
            )
        elif row.section == "ceiling" and row.scenario.startswith("INCR"):
            lines.append(
                f"INCR {where}: Redis-side µs/call {row.extra.get('redis_usec_per_call')}"
                " (the AOF fsync happens outside the command time)"
            )
        elif row.section == "http" and "pairs_s" in row.extra:
            lines.append(
                f"HTTP reserve+release W={row.workers} {where}: {row.extra['pairs_s']:,} pairs/s"
                + _per_process(row)
            )
        elif row.section == "http" and row.baseline and (row.workers or 0) > 1:
            lines.append(f"HTTP reserve W={row.workers} {where}:" + _per_process(row))
        elif row.section == "open_loop":
            x = row.extra
            lines.append(
                f"open loop W={row.workers} {where}: p50 {row.p50_ms:.2f} / p90"
                f" {x['p90_ms']:.2f} / p99 {row.p99_ms:.2f} / max {x['max_ms']:.2f} ms over"
                f" {x['scheduled']:,} scheduled requests, achieved {row.ops_s:,.0f}/s,"
                f" errors {row.errors} (unanswered {x['unfinished']}); generator sent late by"
                f" p50 {x['send_lag_p50_ms']:.2f} / p99 {x['send_lag_p99_ms']:.2f} ms"
                + (f"; errors seen: {x['error_samples']}" if x["error_samples"] else "")
                + _per_process(row)
            )
    lines += peer_notes(outcome.rows)
    lines += ledger.notes(outcome.rows) + outcome.notes
    lines += warehouse.notes(outcome.rows)
    lines += audit.notes(outcome.rows)
    lines += cluster.notes(outcome.rows)
    lines += propagation.notes(outcome.rows)
    cost = fsync_cost(outcome.rows)
    if cost:
        lines.append(cost)
    if any(r.section == "open_loop" for r in outcome.rows):
        lines.append(
            f"open-loop generator: {meta.get('open_loop_generator')}, each request due on a fixed"
            " schedule and timed from its due time (no coordinated omission); requests unanswered"
            f" {open_loop.GRACE_S:g} s after the last send count as errors and are not in the"
            " percentiles. The generators run on the same 2 cores as the server and Redis, so"
            " their CPU (load) competes with them."
        )
    if any(r.section == "http" for r in outcome.rows):
        lines.append(
            f"HTTP rows: wrk -t{wrk_runner.WRK_THREADS}, closed loop (conc = connections), each"
            " request a new reservation id; wrk latencies are per request at saturation."
        )
    return lines


def peer_notes(rows: list[Row]) -> list[str]:
    """The hot SKU race, spread load and scale details."""
    lines = []
    for row in rows:
        x = row.extra
        if row.section == "hot":
            lines.append(
                f"{row.scenario}: sold {x['sold']} of {x['units']} (read back: reserved units;"
                f" {x['reservations']} active reservations), {x['created_201']} answered 201,"
                f" {x['sold_out_409']} answered 409 insufficient_stock, errors {row.errors};"
                f" sold out in {x['sell_out_s']} s (first request sent to last 201 received);"
                f" wrk ran {x['wrk_seconds']} s, {x['requests']:,} requests"
            )
        elif row.section == "spread" and "counts" in x:
            lines.append(
                f"{row.scenario}: operations {x['counts']}, 409 insufficient_stock"
                f" {x['short_409']}, started once the server was idle (waited {x['settle_s']} s)"
                + (f"; errors seen: {x['error_samples']}" if x["error_samples"] else "")
                + _per_process(row)
            )
        elif row.section == "scale":
            lines.append(
                f"scale {x['positions']:,} positions: {x['bytes_per_position']} B of Redis memory"
                f" per position (used_memory delta over the positions added; one position hash"
                f" alone, MEMORY USAGE: {x['position_key_bytes']} B); loaded in {x['load_s']} s"
                f" ({x['load_positions_s']:,} positions/s, pipelined set_count); the new server's"
                f" start-up work (its audit of every position) took {x['settle_s']} s;"
                " spread p50/p99"
                f" {row.p50_ms:.2f}/{row.p99_ms:.2f} ms, reserve"
                f" {x['reserve_p50_ms']:.2f}/{x['reserve_p99_ms']:.2f} ms"
                + (
                    f" ({x['reserve_p50_growth']}x the first step's)"
                    if "reserve_p50_growth" in x
                    else ""
                )
                + (
                    f"; {x['bytes_per_active_hold']} B per active hold"
                    if "bytes_per_active_hold" in x
                    else ""
                )
            )
    ceiling = ceiling_note(rows)
    if ceiling:
        lines.append(ceiling)
    if any(r.section == "hot" for r in rows):
        lines.append(
            f"hot SKU rows: wrk -t{hot.WRK_THREADS} -c<conc> with bench/load/wrk/hot.lua (a new"
            " reservation id per request), stopped once the store shows the SKU sold out; ops/s"
            " = units sold / sell-out time; latency over every request of the race (201 and 409)."
            " For the peer's rows the redis CPU column is the PostgreSQL server's processes."
        )
    if any(r.section in ("spread", "scale") for r in rows):
        lines.append(
            "spread rows: closed-loop shoppers (raw asyncio HTTP/1.1 keep-alive, several"
            " processes; their CPU is load): half the turns read availability, the others reserve"
            " one unit and then release it (40 %) or confirm it and fulfil (2/3) or release it."
            " Seeding's outbox events are trimmed before the run."
        )
    return lines


def ceiling_note(rows: list[Row]) -> str:
    """What fraction of the Redis ceiling (pipelined INCR, always) the engine reaches end to end."""
    incr = [r for r in rows if r.section == "ceiling" and r.fsync == "always" and not r.baseline]
    ours = [
        r
        for r in rows
        if r.section in ("http", "hot")
        and r.scenario.endswith(("POST /v1/reservations", "stocksync"))
    ]
    if not incr or not ours:
        return ""
    top = max(incr, key=lambda r: r.ops_s)
    best = max(ours, key=lambda r: r.ops_s)
    return (
        f"ceiling: the best end-to-end reserve rate ({best.scenario}, W={best.workers}, conc"
        f" {best.concurrency}: {best.ops_s:,.0f}/s) is {100 * best.ops_s / top.ops_s:.1f} % of"
        f" the Redis ceiling ({top.scenario}, conc {top.concurrency}: {top.ops_s:,.0f}/s)"
    )


def _find(rows: list[Row], fsync: str, match: Callable[[Row], bool]) -> Row | None:
    return next((r for r in rows if r.fsync == fsync and match(r)), None)


def _script(prefix: str, concurrency: str) -> Callable[[Row], bool]:
    def match(row: Row) -> bool:
        return (
            row.section == "ceiling"
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


def _per_process(row: Row) -> str:
    """CPU of each API process (supervisor and workers): shows how evenly workers are loaded."""
    shares = row.extra.get("api_process_cpu")
    if not isinstance(shares, list) or len(shares) < 2:
        return ""
    return " API CPU% per process " + "/".join(f"{v:g}" for v in shares)
