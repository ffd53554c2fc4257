"""The ``hot`` section: thousands of keep-alive buyers race for a few hundred units of one SKU.

The same wrk script (``bench/load/wrk/hot.lua``: two threads, one new reservation id per
request) drives stocksync and the row-lock peer in turn. Units sold are read back from each
system's store after the race (reserved units and active reservations), not inferred from 201s.
wrk runs until the store shows the SKU sold out (plus a short grace for answers in flight) or
its time bound.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import redis

from bench.harness import pg
from bench.harness.config import FSYNC_OURS
from bench.harness.cpu import CpuWindow, children_cpu_seconds, no_pids, wait_idle
from bench.harness.report import RESULTS_DIR, Row
from bench.harness.servers import ApiServer, BenchRedis
from bench.harness.stats import merged_percentile
from bench.load.wrk_runner import WRK_DIR, wrk_binary
from bench.peer.server import PeerServer, peer_fsync, postgres_pids
from stocksync.store.keys import RESERVED, Keys

HOT_LOCATION = "bench-flash"
WRK_THREADS = 2
POLL_S = 0.05
GRACE_S = 0.3  # after the store shows sold out: answers already on the wire arrive
TARGET_RATIO = 10.0
WARM_CONNECTIONS = 64
WARM_SECONDS = 1
SETTLE_TIMEOUT_S = 60.0  # for a server's start-up work to finish
Log = Callable[[str], None]


@dataclass(frozen=True)
class Contender:
    """One system under test, as the race needs it."""

    name: str
    fsync: str  # its durability setting, for the table
    workers: int
    base_url: str
    key: str
    api_pids: Callable[[], list[int]]
    store_pids: Callable[[], list[int]]  # redis-server, or the PostgreSQL server processes
    seed: Callable[[str, str, int], None]  # (location, sku, units)
    held: Callable[[str, str], tuple[int, int]]  # (units reserved, active reservations)
    worker_pids: Callable[[], list[int]] = no_pids  # serve's workers process


@dataclass(frozen=True)
class Race:
    units: int
    reserved: int  # read back after the race
    reservations: int  # read back after the race
    created: int  # 201s wrk saw
    sold_out: int  # 409 insufficient_stock wrk saw
    errors: int  # any other status, and socket errors
    sell_out_s: float  # first request sent to last 201 received
    wrk_seconds: float
    requests: int
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.reserved / self.sell_out_s if self.sell_out_s > 0 else 0.0


def redis_held(url: str, namespace: str = "default") -> Callable[[str, str], tuple[int, int]]:
    keys = Keys(namespace)

    def held(location_id: str, sku: str) -> tuple[int, int]:
        client = redis.Redis.from_url(url)
        try:
            reserved = client.hget(keys.position(sku, location_id), RESERVED)
            holds = client.zcard(keys.holds(sku, location_id))
        finally:
            client.close()
        return int(reserved or 0), int(holds)

    return held


def race(
    who: Contender, sku: str, units: int, connections: int, max_seconds: int, tag: str
) -> Race:
    """Warm the system up, seed ``units`` of ``sku``, run the race, read back what was sold."""
    wait_idle(lambda: who.api_pids() + who.worker_pids(), SETTLE_TIMEOUT_S)
    warm_up(who, tag)
    who.seed(HOT_LOCATION, sku, units)
    command = [wrk_binary(), f"-t{WRK_THREADS}", f"-c{connections}", f"-d{max_seconds}s"]
    command += [
        "--timeout",
        "10s",
        "-s",
        str(WRK_DIR / "hot.lua"),
        who.base_url + "/v1/reservations",
    ]
    command += ["--", who.key, sku, HOT_LOCATION, tag]
    groups = {"api": who.api_pids, "workers": who.worker_pids, "redis": who.store_pids}
    window = CpuWindow(groups).start()
    wrk_cpu = children_cpu_seconds()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + max_seconds
        while process.poll() is None and time.monotonic() < deadline:
            if who.held(HOT_LOCATION, sku)[0] >= units:
                time.sleep(GRACE_S)
                break
            time.sleep(POLL_S)  # bounded poll of the store while wrk runs
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # wrk stops and prints its summary
        out, err = process.communicate(timeout=max_seconds + 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    cpu = window.stop(children_cpu_seconds() - wrk_cpu).shares()
    return parse(who, sku, units, out.decode(), err.decode(), process.returncode, cpu)


def warm_up(who: Contender, tag: str) -> None:
    """A second of reservations on another SKU: pools filled, scripts and statements prepared."""
    sku = f"WARM-{tag}"
    who.seed(HOT_LOCATION, sku, 1_000_000)
    command = [wrk_binary(), "-t1", f"-c{WARM_CONNECTIONS}", f"-d{WARM_SECONDS}s"]
    command += ["-s", str(WRK_DIR / "reserve.lua"), who.base_url + "/v1/reservations"]
    command += ["--", who.key, sku, HOT_LOCATION, f"warm-{tag}"]
    done = subprocess.run(command, capture_output=True, timeout=WARM_SECONDS + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk warm-up failed against {who.name}: {done.stderr[-2000:]!r}")


def parse(
    who: Contender, sku: str, units: int, out: str, err: str, code: int, cpu: dict[str, float]
) -> Race:
    lines = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in out.splitlines() if "JSON " in ln}
    if code != 0 or "BENCHJSON" not in lines or "HOTJSON" not in lines:
        raise RuntimeError(f"wrk failed ({code}) against {who.name}: {err[-2000:]}")
    raw, hot = json.loads(lines["BENCHJSON"]), json.loads(lines["HOTJSON"])
    reserved, reservations = who.held(HOT_LOCATION, sku)
    runs = ((raw["requests"], tuple(v / 1000 for v in raw["quantiles_us"])),)
    socket_errors = sum(raw[k] for k in ("connect", "read", "write", "timeout"))
    span = (hot["last_ok_us"] - hot["first_send_us"]) / 1e6 if hot["last_ok_us"] else 0.0
    return Race(
        units=units,
        reserved=reserved,
        reservations=reservations,
        created=raw["ok"],
        sold_out=hot["short"],
        errors=raw["failed"] + socket_errors,
        sell_out_s=span,
        wrk_seconds=raw["duration_us"] / 1e6,
        requests=raw["requests"],
        p50_ms=merged_percentile(runs, 50),
        p99_ms=merged_percentile(runs, 99),
        cpu=cpu,
    )


def row(who: Contender, result: Race, connections: int) -> Row:
    return Row(
        section="hot",
        scenario=f"hot SKU race: {who.name}",
        fsync=who.fsync,
        workers=who.workers,
        concurrency=str(connections),
        ops_s=result.rate,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        cpu=result.cpu,
        extra={
            "units": result.units,
            "sold": result.reserved,
            "reservations": result.reservations,
            "created_201": result.created,
            "sold_out_409": result.sold_out,
            "sell_out_s": round(result.sell_out_s, 3),
            "wrk_seconds": round(result.wrk_seconds, 2),
            "requests": result.requests,
        },
    )


def exact(result: Race) -> bool:
    """Sold exactly the stock (read back), and no buyer was told yes beyond it."""
    return result.reserved == result.reservations == result.units >= result.created


def compare(ours: Row, ours_race: Race, peer: Row, peer_race: Race) -> None:
    """Mark our row against the peer's: at least 10x its rate, both selling exactly the stock."""
    ours.baseline, ours.baseline_ops_s = "row-lock peer", peer.ops_s
    ours.target = f">= {TARGET_RATIO:g}x, exact"
    ratio = ours.ratio or 0.0
    ours.passed = ratio >= TARGET_RATIO and exact(ours_race) and exact(peer_race)
    peer.target, peer.passed = "exact", exact(peer_race)


def ours_contender(server: ApiServer, redis: BenchRedis) -> Contender:
    return Contender(
        name="stocksync",
        fsync=FSYNC_OURS,
        workers=server.workers,
        base_url=server.base_url,
        key=server.key,
        api_pids=server.pids,
        store_pids=lambda: [redis.pid],
        seed=server.seed,
        held=redis_held(redis.url),
        worker_pids=server.workers_pids,
    )


def peer_contender(peer: PeerServer, fsync: str) -> Contender:
    return Contender(
        name="row-lock peer",
        fsync=fsync,
        workers=peer.workers,
        base_url=peer.base_url,
        key=peer.key,
        api_pids=peer.pids,
        store_pids=postgres_pids,
        seed=peer.seed,
        held=peer.held,
    )


def run(
    api: Callable[[], AbstractContextManager[ApiServer]],
    redis: BenchRedis,
    workers: int,
    units: int,
    connections: int,
    max_seconds: int,
    log: Log,
    notes: list[str],
) -> tuple[list[Row], list[Race]]:
    """The race on stocksync, then on the peer (when PostgreSQL is reachable)."""
    tag = f"hot{time.time_ns()}"
    sku = f"FLASH-{tag}"
    races: list[Race] = []
    rows: list[Row] = []
    with api() as server:
        log(f"    hot SKU race on stocksync: {connections} buyers, {units} units")
        who = ours_contender(server, redis)
        races.append(race(who, sku, units, connections, max_seconds, tag + "s"))
        rows.append(row(who, races[-1], connections))
    reason = pg.unreachable()
    if reason:
        notes.append(f"hot SKU race: row-lock peer skipped: {reason}")
        return rows, races
    with PeerServer(workers, RESULTS_DIR / "logs") as peer:
        log(f"    hot SKU race on the row-lock peer: {connections} buyers, {units} units")
        who = peer_contender(peer, peer_fsync())
        races.append(race(who, sku, units, connections, max_seconds, tag + "p"))
        rows.append(row(who, races[-1], connections))
    compare(rows[0], races[0], rows[1], races[1])
    return rows, races
