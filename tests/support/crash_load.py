"""The crash tests' client load and what it leaves behind: reservation flows run through HTTP
by a driver that records every acknowledgement (and retries failures with the same, idempotent
call), one process killed and restarted mid-load, and the settled state read back from Redis
and the SQL ledger once the worker has drained the outbox."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis, RedisCluster
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from stocksync.domain.model import DEFAULT_DOMAIN
from stocksync.ledger.sql_ledger import MOVEMENTS, RESERVATIONS
from stocksync.store.keys import ON_HAND, RESERVED
from tests.support.processes import Stack, kill_and_restart, ledger_pending

SKUS = ("CRASH-A", "CRASH-B", "CRASH-C")
LOCATIONS = ("store-north", "wh-south")
INITIAL_ON_HAND = 400
FLOWS = 200  # reservations the driver makes (each followed by 0-3 transitions)
CONCURRENCY = 16
KILL_AFTER_ACKS = 120  # acknowledged operations before the kill (about a third of the load)
HOLD_TTL_SECONDS = 3600  # nothing expires during a test

RETRY_WINDOW = 45.0  # how long the driver keeps retrying one call across a restart
LOAD_TIMEOUT = 90.0
# A killed ledger writer's unacknowledged entries are claimed by the new one once they have
# been idle for CLAIM_IDLE_SECONDS (tests.support.processes); the rest is the writer's backlog.
DRAIN_TIMEOUT = 60.0

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


async def seed(client: httpx.AsyncClient, domain: str = DEFAULT_DOMAIN) -> None:
    for loc in LOCATIONS:
        kind = "warehouse" if loc.startswith("wh-") else "store"
        body: dict[str, Any] = {"name": loc, "kind": kind, "pickup": kind == "store", "ship": True}
        if domain != DEFAULT_DOMAIN:
            body["domain"] = domain
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

    @property
    def acknowledged(self) -> list[Tracked]:
        """The reservations whose creation, at least, the API acknowledged."""
        return [t for t in self.flows if t.acked is not None]


async def load_with_crash(stack: Stack, victim: str) -> Crash:
    """Seed, run the load, SIGKILL ``victim`` after KILL_AFTER_ACKS acknowledgements,
    restart it, let the load finish. Returns what the driver saw."""
    flows = make_flows(random.randrange(1_000_000))
    async with api_client(stack) as client:
        await seed(client, stack.domain)
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
                await stack.redis.restore()
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


async def wait_drained(stack: Stack, client: Redis | RedisCluster) -> None:
    """Bounded poll until every SKU event in Redis is in the ledger: for each SKU the ledger
    holds seq 1..N exactly, N being Redis's seq, and the ledger group has nothing pending."""
    keys = stack.keys
    deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT
    while True:
        seqs = {str(k): int(v) for k, v in (await client.hgetall(keys.seq)).items()}
        summary = await ledger_pending(client, keys.outbox)
        pending = int(summary["pending"])
        ledger = await asyncio.to_thread(ledger_seqs, stack.engine, stack.ledger_namespace)
        if (
            summary["group"]
            and pending == 0
            and all(ledger.get(s) == (n, n, n) for s, n in seqs.items())
        ):
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


@dataclass
class Settled:
    """What Redis and the ledger hold once the load is over and the outbox is drained."""

    in_redis: dict[str, tuple[str, list[Line]]]  # the flows' reservations: state, lines
    positions: dict[Position, tuple[int, int]]  # (on_hand, reserved) in Redis
    ledger_reservations: dict[str, tuple[str, list[Line]]]
    movements: list[Any]


async def settle(stack: Stack, flows: list[Tracked]) -> Settled:
    """Wait for the worker to drain the outbox into the ledger, then read back the flows'
    reservations and every position from Redis, and the reservations and movements from the
    ledger."""
    client = stack.redis.client()
    try:
        await wait_drained(stack, client)
        keys = stack.keys
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
                    pipe.hmget(keys.position(sku, loc), ON_HAND, RESERVED)
            raw_positions = await pipe.execute()
    finally:
        await client.aclose()
    positions = {
        p: (int(on_hand or 0), int(reserved or 0))
        for p, (on_hand, reserved) in zip(
            [(s, loc) for s in SKUS for loc in LOCATIONS], raw_positions, strict=True
        )
    }
    ledger_reservations, movements = await asyncio.to_thread(
        fetch_ledger, stack.engine, stack.ledger_namespace
    )
    return Settled(in_redis, positions, ledger_reservations, movements)
