"""Crash tests: SIGKILL the API, the ledger worker or redis-server under load, restart it,
and prove that nothing the API acknowledged was lost or applied twice (DESIGN promise 2,
rules 5 and 6).

Each test runs its own stack: a redis-server (AOF, ``appendfsync always``) on a free port with
its data in a temporary directory, a SQLite ledger file, ``stocksync serve`` (API only, no
workers) and ``stocksync worker`` (reaper, ledger writer, regression checks) as subprocesses
in sessions of their own. A client driver runs a reserve / confirm / ready / fulfil / release
mix through HTTP and records every operation the API acknowledged (2xx); it retries a failed
call (transport error or 5xx) with the same reservation id, which is safe because every call
is idempotent. Once the driver has N acknowledgements, one process is killed with SIGKILL and
restarted; the load then runs to completion, the worker drains the outbox, and the
acknowledged state is checked in Redis, in the SQL ledger and by ``stocksync audit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from stocksync.domain.model import Line as DomainLine
from stocksync.ledger.db import make_engine
from stocksync.ledger.writer import MOVEMENTS, RESERVATIONS, SqlLedger
from stocksync.metrics import Metrics
from stocksync.recovery.audit import audit
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.keys import Keys
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_writer import drain_once, read_entries
from tests.support.ports import free_port
from tests.support.store import Stocked

pytestmark = pytest.mark.slow

SKUS = ("CRASH-A", "CRASH-B", "CRASH-C")
LOCATIONS = ("store-north", "wh-south")
INITIAL_ON_HAND = 400
FLOWS = 200  # reservations the driver makes (each followed by 0-3 transitions)
CONCURRENCY = 16
KILL_AFTER_ACKS = 120  # acknowledged operations before the kill (about a third of the load)
HOLD_TTL_SECONDS = 3600  # nothing expires during a test

START_TIMEOUT = 45.0  # a child process to answer (python start-up is ~2-3 s on 2 cores)
RETRY_WINDOW = 45.0  # how long the driver keeps retrying one call across a restart
LOAD_TIMEOUT = 90.0
# A killed ledger writer's unacknowledged entries are claimed by the new one once they have
# been idle for 30 s (claim_idle_ms), so draining after a worker crash takes that long.
DRAIN_TIMEOUT = 75.0
POLL_SECONDS = 0.1
KILL_WINDOW = 20.0  # to catch the worker holding unacknowledged entries

ACTIVE = frozenset({"held", "confirmed", "ready"})
STATE_AFTER = {
    "confirm": "confirmed",
    "ready": "ready",
    "fulfill": "fulfilled",
    "release": "released",
}
PLANS: tuple[tuple[str, ...], ...] = (
    (),  # stays held
    ("confirm",),
    ("confirm", "ready"),
    ("fulfill",),
    ("confirm", "fulfill"),
    ("confirm", "ready", "fulfill"),
    ("fulfill",),
    ("release",),
    ("confirm", "release"),
    ("confirm", "ready", "release"),
)

Line = tuple[str, str, int]  # sku, location, qty
Position = tuple[str, str]  # sku, location


# -- processes -----------------------------------------------------------------------------


class Processes:
    """Every child process a test starts; whatever is still running is killed at teardown."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []

    def track(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self._started.append(process)
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL, by pid (each child is the leader of a session of its own)."""
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)

    def kill_all(self) -> None:
        for process in reversed(self._started):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.kill(process)


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.kill_all()


def stocksync_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "stocksync.cli", *args]


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    namespace: str
    redis: EmbeddedRedis
    api_port: int
    key: str
    engine: Engine
    processes: Processes
    api: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    logs: Counter[str] = field(default_factory=Counter)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def spawn(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        self.logs[name] += 1
        log = self.root / f"{name}-{self.logs[name]}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                stocksync_cli(*args),
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.processes.track(process), log

    def log_tails(self) -> str:
        logs = sorted(self.root.glob("*.log"))
        return "\n".join(f"--- {log.name}\n{tail(log, 1500)}" for log in logs)

    async def start_api(self) -> None:
        self.api, log = self.spawn("api", "serve", "--port", str(self.api_port))
        await wait_http_ready(self.url, self.api, log)

    async def start_worker(self) -> None:
        self.worker, log = self.spawn("worker", "worker")
        # The worker prints this line after its start-up regression check, before running.
        await wait_for_log_line(log, "stocksync worker on namespace", self.worker)

    def restart_redis_in_thread(self) -> EmbeddedRedis:
        """A new redis-server on the same data directory and port (loads the AOF)."""
        server = EmbeddedRedis(
            self.redis.data_dir,
            port=self.redis.port,
            appendonly=True,
            appendfsync="always",
        )
        server.start()
        assert server.process is not None
        self.processes.track(server.process)
        return server


async def wait_http_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Bounded poll until GET /readyz answers 200 (the child exiting fails at once)."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise AssertionError(f"the API exited with {process.returncode}:\n{tail(log)}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the API was not ready in {START_TIMEOUT}s:\n{tail(log)}")
            await asyncio.sleep(POLL_SECONDS)  # polling a child process for readiness


async def wait_for_log_line(log: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while text not in tail(log, chars=1_000_000):
        if process.poll() is not None:
            raise AssertionError(f"the process exited with {process.returncode}:\n{tail(log)}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {text!r} in {START_TIMEOUT}s:\n{tail(log)}")
        await asyncio.sleep(POLL_SECONDS)  # polling a child process for readiness


async def wait_redis_ping(url: str) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    client = Redis.from_url(url, socket_timeout=1)
    try:
        while True:
            try:
                if await client.ping():
                    return
            except RedisError:  # refused while down, BusyLoadingError while loading the AOF
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("redis did not answer PING")
            await asyncio.sleep(POLL_SECONDS)  # polling a child process for readiness
    finally:
        await client.aclose()


@pytest.fixture
async def stack(tmp_path: Path, processes: Processes) -> AsyncIterator[Stack]:
    redis = EmbeddedRedis(
        tmp_path / "redis", port=free_port(), appendonly=True, appendfsync="always"
    )
    await asyncio.to_thread(redis.start)
    assert redis.process is not None
    processes.track(redis.process)
    namespace = "crash" + uuid.uuid4().hex[:8]
    database = tmp_path / "ledger.db"
    env = {
        **os.environ,
        "STOCKSYNC_REDIS_URL": redis.url,
        "STOCKSYNC_DATABASE_URL": f"sqlite:///{database}",
        "STOCKSYNC_DATA_DIR": str(tmp_path / "data"),
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_RUN_WORKERS": "false",
        "STOCKSYNC_APPENDFSYNC": "always",
        "STOCKSYNC_REAPER_INTERVAL_SECONDS": "0.5",
        "STOCKSYNC_REGRESSION_CHECK_SECONDS": "2",
    }
    # Creating the key also brings the schema to head before two processes open the file.
    created = await asyncio.to_thread(
        subprocess.run,
        stocksync_cli("keys", "create", "--name", "crash", "--scopes", "admin"),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    engine = make_engine(f"sqlite:///{database}")
    stack = Stack(
        root=tmp_path,
        env=env,
        namespace=namespace,
        redis=redis,
        api_port=free_port(),
        key=created.stdout.strip().splitlines()[0],
        engine=engine,
        processes=processes,
    )
    try:
        await asyncio.gather(stack.start_api(), stack.start_worker())
        yield stack
    finally:
        processes.kill_all()
        engine.dispose()


# -- the load ------------------------------------------------------------------------------


@dataclass
class Tracked:
    """One reservation of the driver and what the API acknowledged about it."""

    rid: str
    lines: tuple[Line, ...]
    plan: tuple[str, ...]
    acked: str | None = None  # the last state the API acknowledged
    unacked: str | None = None  # a state asked for but never acknowledged (may have applied)
    refused: str | None = None  # a definitive 4xx (e.g. insufficient_stock)


def make_flows(seed: int) -> list[Tracked]:
    rng = random.Random(seed)
    positions = [(sku, loc) for sku in SKUS for loc in LOCATIONS]
    flows = []
    for i in range(FLOWS):
        picked = rng.sample(positions, rng.choice((1, 1, 2)))
        lines = tuple(sorted((sku, loc, rng.randint(1, 3)) for sku, loc in picked))
        flows.append(Tracked(f"crash-{seed}-{i:04d}", lines, rng.choice(PLANS)))
    return flows


class Driver:
    """Runs the flows with CONCURRENCY tasks; counts and records acknowledgements."""

    def __init__(self, client: httpx.AsyncClient, flows: list[Tracked], kill_after: int) -> None:
        self.client = client
        self.flows = flows
        self.kill_after = kill_after
        self.acks = 0
        self.threshold = asyncio.Event()
        self.failed_attempts = 0  # transport errors and 5xx, each retried
        self.last_failure = ""
        self.unexpected: list[str] = []
        self.finished = False

    def _ack(self) -> None:
        self.acks += 1
        if self.acks >= self.kill_after:
            self.threshold.set()

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response | None:
        """The response of a call that reached a live API (< 500), retrying failures with a
        bounded back-off; None when every attempt in RETRY_WINDOW failed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_WINDOW
        delay = 0.05
        while True:
            try:
                response = await self.client.request(method, path, json=body)
                if response.status_code < 500:
                    return response
                self.last_failure = f"{method} {path}: {response.status_code} {response.text}"
            except httpx.TransportError as exc:
                self.last_failure = f"{method} {path}: {exc!r}"
            self.failed_attempts += 1
            if loop.time() + delay > deadline:
                return None
            await asyncio.sleep(delay)  # back-off between retries of one idempotent call
            delay = min(delay * 2, 1.0)

    async def run_flow(self, t: Tracked) -> None:
        body = {
            "reservation_id": t.rid,
            "channel": "web",
            "ttl_seconds": HOLD_TTL_SECONDS,
            "lines": [{"sku": s, "location_id": loc, "qty": q} for s, loc, q in t.lines],
        }
        if not await self._step(t, "POST", "/v1/reservations", body, "held", (200, 201)):
            return
        for action in t.plan:
            path = f"/v1/reservations/{t.rid}/{action}"
            if not await self._step(t, "POST", path, None, STATE_AFTER[action], (200,)):
                return

    async def _step(
        self,
        t: Tracked,
        method: str,
        path: str,
        body: Any,
        state: str,
        ok: tuple[int, ...],
    ) -> bool:
        response = await self.call(method, path, body)
        if response is None:
            t.unacked = state
            return False
        payload = response.json()
        if response.status_code in ok and payload.get("state") == state:
            t.acked = state
            self._ack()
            return True
        if response.status_code == 409 and payload.get("code") == "insufficient_stock":
            t.refused = "insufficient_stock"
            return False
        t.refused = f"{response.status_code} {payload.get('code')}"
        self.unexpected.append(f"{method} {path}: {response.status_code} {payload}")
        return False

    async def run(self) -> None:
        queue: asyncio.Queue[Tracked] = asyncio.Queue()
        for t in self.flows:
            queue.put_nowait(t)

        async def work() -> None:
            while not queue.empty():
                await self.run_flow(queue.get_nowait())

        try:
            await asyncio.gather(*(work() for _ in range(CONCURRENCY)))
        finally:
            self.finished = True


def api_client(stack: Stack) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {stack.key}"},
        timeout=httpx.Timeout(15.0),
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
    )


async def seed(client: httpx.AsyncClient) -> None:
    for loc in LOCATIONS:
        kind = "warehouse" if loc.startswith("wh-") else "store"
        body = {"name": loc, "kind": kind, "pickup": kind == "store", "ship": True}
        r = await client.put(f"/v1/locations/{loc}", json=body)
        assert r.status_code in (200, 201), r.text
        for sku in SKUS:
            r = await client.put(f"/v1/stock/{loc}/{sku}", json={"on_hand": INITIAL_ON_HAND})
            assert r.status_code == 200, r.text


@dataclass
class Crash:
    victim: str
    acks_at_kill: int
    acks_after_kill: int
    acks_after_restart: int
    worker_held: int  # outbox entries the killed worker had read and not acknowledged
    driver: Driver
    flows: list[Tracked]


async def load_with_crash(stack: Stack, victim: str) -> Crash:
    """Seed, run the load, SIGKILL ``victim`` after KILL_AFTER_ACKS acknowledgements,
    restart it, let the load finish. Returns what the driver saw."""
    flows = make_flows(random.randrange(1_000_000))
    async with api_client(stack) as client:
        await seed(client)
        driver = Driver(client, flows, KILL_AFTER_ACKS)
        load = asyncio.create_task(driver.run())
        try:
            try:
                await asyncio.wait_for(driver.threshold.wait(), timeout=LOAD_TIMEOUT)
                assert not driver.finished, "the load finished before the kill: make it longer"
                acks_at_kill = driver.acks
                held = await kill_and_restart(stack, victim)
                acks_at_restart = driver.acks
                await asyncio.wait_for(asyncio.shield(load), timeout=LOAD_TIMEOUT)
            except TimeoutError as exc:
                raise AssertionError(
                    f"the load did not finish in {LOAD_TIMEOUT}s: {driver.acks} acknowledged, "
                    f"{driver.failed_attempts} failed attempts, the last {driver.last_failure}"
                    f"\n{stack.log_tails()}"
                ) from exc
        finally:
            if not load.done():
                load.cancel()
                await asyncio.gather(load, return_exceptions=True)
    return Crash(
        victim,
        acks_at_kill,
        driver.acks - acks_at_kill,
        driver.acks - acks_at_restart,
        held,
        driver,
        flows,
    )


async def kill_and_restart(stack: Stack, victim: str) -> int:
    """SIGKILL ``victim`` and restart it; returns the outbox entries a killed worker held."""
    held = 0
    if victim == "api":
        assert stack.api is not None
        Processes.kill(stack.api)
        await stack.start_api()
    elif victim == "worker":
        held = await kill_worker_holding_entries(stack)
        await stack.start_worker()
    elif victim == "redis":
        assert stack.redis.process is not None
        Processes.kill(stack.redis.process)
        stack.redis = await asyncio.to_thread(stack.restart_redis_in_thread)
        await wait_redis_ping(stack.redis.url)
    else:
        raise ValueError(victim)
    return held


async def kill_worker_holding_entries(stack: Stack) -> int:
    """SIGKILL the worker while it holds outbox entries it read but has not acknowledged
    (read, SQL write not yet committed or not yet acknowledged): freeze it (SIGSTOP), look at
    its pending entries, and kill it if there are any, else let it go on and look again
    (bounded). Returns how many entries it held when it was killed."""
    worker = stack.worker
    assert worker is not None
    consumer = f"{socket.gethostname()}-{worker.pid}"  # stocksync.workers.supervisor
    outbox = Keys(stack.namespace).outbox
    client = Redis.from_url(stack.redis.url, decode_responses=True)
    deadline = asyncio.get_running_loop().time() + KILL_WINDOW
    try:
        while True:
            os.kill(worker.pid, signal.SIGSTOP)
            summary = await client.xpending(outbox, "ledger")
            held = {c["name"]: int(c["pending"]) for c in summary["consumers"]}.get(consumer, 0)
            if held > 0 or asyncio.get_running_loop().time() > deadline:
                Processes.kill(worker)
                return held
            os.kill(worker.pid, signal.SIGCONT)
            await asyncio.sleep(0.002)  # let it run a little before looking again
    finally:
        await client.aclose()


# -- after the load: drain, then check -----------------------------------------------------


def ledger_seqs(engine: Engine, namespace: str) -> dict[str, tuple[int, int, int]]:
    """sku -> (movements, distinct seqs, max seq) in the ledger."""
    m = MOVEMENTS.c
    stmt = (
        select(m.sku, func.count(), func.count(m.seq.distinct()), func.max(m.seq))
        .where(m.namespace == namespace)
        .group_by(m.sku)
    )
    with engine.connect() as conn:
        return {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in conn.execute(stmt)}


async def wait_drained(stack: Stack, client: Redis) -> None:
    """Bounded poll until every SKU event in Redis is in the ledger: for each SKU the ledger
    holds seq 1..N exactly, N being Redis's seq, and the ledger group has nothing pending."""
    keys = Keys(stack.namespace)
    deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT
    while True:
        seqs = {str(k): int(v) for k, v in (await client.hgetall(keys.seq)).items()}
        pending = int((await client.xpending(keys.outbox, "ledger"))["pending"])
        ledger = await asyncio.to_thread(ledger_seqs, stack.engine, stack.namespace)
        if pending == 0 and all(ledger.get(s) == (n, n, n) for s, n in seqs.items()):
            return
        assert stack.worker is not None
        if stack.worker.poll() is not None:
            raise AssertionError(f"the worker exited with {stack.worker.returncode}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"the ledger did not catch up in {DRAIN_TIMEOUT}s: redis seqs {seqs}, "
                f"ledger (rows, distinct seqs, max seq) {ledger}, {pending} pending"
            )
        await asyncio.sleep(0.2)  # polling the worker's progress


def fetch_ledger(
    engine: Engine, namespace: str
) -> tuple[dict[str, tuple[str, list[Line]]], list[Any]]:
    """The ledger's reservations (id -> state, lines) and its movements."""
    r, m = RESERVATIONS.c, MOVEMENTS.c
    with engine.connect() as conn:
        reservations = {
            str(row.reservation_id): (
                str(row.state),
                sorted((str(s), str(loc), int(q)) for s, loc, q in json.loads(row.lines)),
            )
            for row in conn.execute(
                select(r.reservation_id, r.state, r.lines).where(r.namespace == namespace)
            )
        }
        movements = list(
            conn.execute(
                select(
                    m.event_id,
                    m.kind,
                    m.sku,
                    m.location_id,
                    m.seq,
                    m.reservation_id,
                    m.qty,
                    m.d_on_hand,
                    m.d_reserved,
                ).where(m.namespace == namespace)
            )
        )
    return reservations, movements


async def check_invariants(stack: Stack, crash: Crash) -> None:
    driver, flows = crash.driver, crash.flows
    if crash.victim == "worker":
        # The API does not wait for the ledger worker: the load goes on while it is dead (and
        # may end before it is back); that the restarted worker catches up is checked below.
        assert crash.acks_after_kill > 0, "no operation was acknowledged after the kill"
    else:
        assert crash.acks_after_restart > 0, "no operation was acknowledged after the restart"
    assert not driver.unexpected, driver.unexpected[:10]
    acknowledged = [t for t in flows if t.acked is not None]
    assert len(acknowledged) > FLOWS // 2, "most reservations should have been acknowledged"

    client = Redis.from_url(stack.redis.url, decode_responses=True)
    try:
        await wait_drained(stack, client)
        keys = Keys(stack.namespace)
        async with client.pipeline(transaction=False) as pipe:
            for t in flows:
                pipe.hmget(keys.reservation(t.rid), "state", "lines")
            rows = await pipe.execute()
        in_redis: dict[str, tuple[str, list[Line]]] = {
            t.rid: (str(state), sorted((s, loc, int(q)) for s, loc, q in json.loads(lines)))
            for t, (state, lines) in zip(flows, rows, strict=True)
            if state is not None
        }
        async with client.pipeline(transaction=False) as pipe:
            for sku in SKUS:
                for loc in LOCATIONS:
                    pipe.hmget(keys.position(sku, loc), "on_hand", "reserved")
            raw_positions = await pipe.execute()
    finally:
        await client.aclose()
    positions = {
        p: (int(on_hand), int(reserved))
        for p, (on_hand, reserved) in zip(
            [(s, loc) for s in SKUS for loc in LOCATIONS], raw_positions, strict=True
        )
    }
    ledger_reservations, movements = await asyncio.to_thread(
        fetch_ledger, stack.engine, stack.namespace
    )

    # (a) Every acknowledged reservation is in Redis in the acknowledged state (or in the state
    # of a call that failed after it, which may have applied), and in the ledger in the same.
    for t in acknowledged:
        assert t.rid in in_redis, f"acknowledged reservation {t.rid} ({t.acked}) lost in Redis"
        state, lines = in_redis[t.rid]
        allowed = {t.acked, t.unacked} - {None}
        assert state in allowed, f"{t.rid}: acknowledged {t.acked}, Redis says {state}"
        assert lines == sorted(t.lines), t.rid
        assert ledger_reservations.get(t.rid) == (state, lines), (
            f"{t.rid}: Redis {state}, ledger {ledger_reservations.get(t.rid)}"
        )
    # ... and the API answers the same.
    async with api_client(stack) as api:
        for t in acknowledged:
            r = await api.get(f"/v1/reservations/{t.rid}")
            assert r.status_code == 200, r.text
            assert r.json()["state"] == in_redis[t.rid][0], t.rid
    # Reservations that were never acknowledged may exist (a call applied, its reply lost),
    # but then in both Redis and the ledger, identically; the ledger has nothing else.
    ours = {t.rid for t in flows}
    assert {k: v for k, v in ledger_reservations.items() if k in ours} == in_redis
    assert set(ledger_reservations) <= ours

    # (b) Every acknowledged sale has exactly one `fulfilled` movement per line.
    by_reservation: dict[tuple[str, str], list[Line]] = {}
    for mv in movements:
        if mv.reservation_id is not None:
            by_reservation.setdefault((mv.reservation_id, mv.kind), []).append(
                (mv.sku, mv.location_id, int(mv.qty))
            )
    for t in acknowledged:
        if t.acked == "fulfilled":
            assert sorted(by_reservation.get((t.rid, "fulfilled"), [])) == sorted(t.lines), t.rid
    per_line = Counter(
        (mv.reservation_id, mv.kind, mv.sku, mv.location_id)
        for mv in movements
        if mv.reservation_id is not None
    )
    assert [k for k, n in per_line.items() if n > 1] == []
    # Every reservation in a state has the events of the path there, once (held on every one).
    for rid, (state, lines) in in_redis.items():
        assert sorted(by_reservation.get((rid, "held"), [])) == lines, rid
        if state in ("fulfilled", "released"):
            assert sorted(by_reservation.get((rid, state), [])) == lines, rid

    # (c) No duplicated movement: event ids are unique, and so is (sku, seq).
    assert [e for e, n in Counter(mv.event_id for mv in movements).items() if n > 1] == []
    assert [k for k, n in Counter((mv.sku, mv.seq) for mv in movements).items() if n > 1] == []

    # (e) Stock arithmetic, from the final state of every reservation the driver made.
    sold: Counter[Position] = Counter()
    held: Counter[Position] = Counter()
    for state, lines in in_redis.values():
        for sku, loc, qty in lines:
            if state == "fulfilled":
                sold[(sku, loc)] += qty
            elif state in ACTIVE:
                held[(sku, loc)] += qty
    expected = {p: (INITIAL_ON_HAND - sold[p], held[p]) for p in positions}
    assert positions == expected
    ledger_positions = SqlLedger(stack.engine).positions(stack.namespace)
    assert {p: v[:2] for p, v in ledger_positions.items()} == expected
    assert sum(sold.values()) > 0  # the mix both sold
    assert sum(held.values()) > 0  # and kept holds

    # (d) The audit agrees: exit 0, nothing drifting, nothing in flight.
    audit = await asyncio.to_thread(
        subprocess.run,
        stocksync_cli("audit"),
        env=stack.env,
        cwd=stack.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert f"{len(positions)} position(s) compared" in audit.stdout, audit.stdout
    assert "0 with events not yet in the ledger, 0 drifting" in audit.stdout, audit.stdout


# -- the tests -----------------------------------------------------------------------------


async def test_kill_api_mid_load(stack: Stack) -> None:
    crash = await load_with_crash(stack, "api")
    assert crash.driver.failed_attempts > 0, "no call failed: the kill missed the load"
    await check_invariants(stack, crash)


async def test_kill_ledger_worker_mid_load(stack: Stack) -> None:
    crash = await load_with_crash(stack, "worker")
    assert crash.worker_held > 0, "the worker was not killed while holding outbox entries"
    await check_invariants(stack, crash)


async def test_kill_redis_mid_load(stack: Stack) -> None:
    crash = await load_with_crash(stack, "redis")
    assert crash.driver.failed_attempts > 0, "no call failed: the kill missed the load"
    await check_invariants(stack, crash)


async def test_audit_counts_a_killed_workers_unclaimed_entries_as_in_flight(
    store: RedisStockStore, stocked: Stocked, sku: str, namespace: str, engine: Engine
) -> None:
    """The state a SIGKILLed ledger writer leaves, at library level: it read an entry and
    died before committing it; the new writer records later entries of the same SKU but
    claims the dead one's only after ``claim_idle_ms`` (30 s). In that window the ledger
    holds the SKU's latest seq with a hole below it, and nothing has drifted: the audit must
    count the position as in flight, not report drift (``stocksync audit`` would exit 1)."""
    ledger, metrics = SqlLedger(engine), Metrics()
    await stocked(sku, 10)
    await drain_once(store.client, ledger, namespace, metrics, consumer="w1")
    await store.reserve("gap-1", "web", [DomainLine(sku, "store-a", 2)], 600)
    dead = await read_entries(store.client, store.keys.outbox, "dead-worker", 100, ">")
    assert len(dead) == 1  # the hold's event, read and never acknowledged: killed mid-batch
    await store.reserve("gap-2", "web", [DomainLine(sku, "store-a", 1)], 600)
    await drain_once(store.client, ledger, namespace, metrics, consumer="w2")  # idle < 30 s
    assert (await store.position(sku, "store-a")).reserved == 3
    report = await audit(store, engine, namespace)
    assert (report.in_flight, report.drifts) == (1, []), report
    # Once claimed, the position is settled and agrees.
    await drain_once(store.client, ledger, namespace, metrics, consumer="w2", claim_idle_ms=0)
    report = await audit(store, engine, namespace)
    assert (report.positions, report.in_flight, report.drifts) == (1, 0, []), report
