"""The shelf crash tests' load: transfers (shipped, then received in full or short, cancelled,
or left in transit), sales returned in part by linked returns, and unlinked till returns, run
through HTTP by the crash tests' driver (every failed call retried with the same ids and body;
every 2xx recorded), one process SIGKILLed and restarted mid-load; then the settled state read
back from Redis and the SQL ledger once the worker has drained the outbox."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine

from stocksync.ledger.sql_ledger import MOVEMENTS
from stocksync.store.keys import DAMAGED, IN_TRANSIT, ON_HAND, QUALITY_CONTROL, RESERVED
from tests.support.crash_load import (
    LOAD_TIMEOUT,
    LOCATIONS,
    SKUS,
    Driver,
    api_client,
    seed,
    wait_drained,
)
from tests.support.processes import Stack, kill_and_restart

TRANSFERS = 50
SALES = 50
TILL_RETURNS = 30
KILL_AFTER_ACKS = 100  # about a third of the load's acknowledgements
HOLD_TTL_SECONDS = 3600
DISPOSITIONS = ("restock", "inspect", "damaged")
TRANSFER_PLANS = ("stay", "receive", "receive short", "cancel")
BUCKETS = ("on_hand", "reserved", "damaged", "quality_control", "in_transit")
FIELDS = (ON_HAND, RESERVED, DAMAGED, QUALITY_CONTROL, IN_TRANSIT)  # in the order of BUCKETS

Position = tuple[str, str]  # sku, location


@dataclass(frozen=True)
class Step:
    name: str  # ship, receive, cancel, reserve, fulfill, or a return id
    method: str
    path: str
    body: Any
    ok: tuple[int, ...]  # the answers that acknowledge it


@dataclass
class Flow:
    """One transfer, sale or till return and what the API acknowledged of its steps."""

    kind: str  # transfer | sale | till return
    key: str  # the transfer, reservation or return id
    steps: list[Step]
    acked: list[str] = field(default_factory=list)  # names of the steps acknowledged
    unacked: str | None = None  # the step no attempt got an answer for (may have applied)


def transfer_flow(rng: random.Random, i: int, tag: int) -> Flow:
    tid = f"xfer-{tag}-{i:03d}"
    source, target = rng.sample(LOCATIONS, 2)
    lines = {sku: rng.randint(1, 3) for sku in rng.sample(SKUS, rng.choice((1, 2)))}
    body = {
        "transfer_id": tid,
        "from_location_id": source,
        "to_location_id": target,
        "lines": [{"sku": s, "qty": q} for s, q in sorted(lines.items())],
    }
    steps = [Step("ship", "POST", "/v1/transfers", body, (200, 201))]
    plan = rng.choice(TRANSFER_PLANS)
    if plan.startswith("receive"):
        receipt = dict(lines)
        if plan == "receive short":
            short = rng.choice(sorted(receipt))
            receipt[short] -= rng.randint(1, receipt[short])
        body = {"lines": [{"sku": s, "qty": q} for s, q in sorted(receipt.items())]}
        steps.append(Step("receive", "POST", f"/v1/transfers/{tid}/receive", body, (200,)))
    elif plan == "cancel":
        steps.append(Step("cancel", "POST", f"/v1/transfers/{tid}/cancel", None, (200,)))
    return Flow("transfer", tid, steps)


def return_lines(rng: random.Random, units: dict[str, int]) -> list[dict[str, Any]]:
    """One line per SKU with units (at either location, any disposition)."""
    lines = []
    for sku, qty in sorted(units.items()):
        if qty > 0:
            loc, disposition = rng.choice(LOCATIONS), rng.choice(DISPOSITIONS)
            lines.append({"sku": sku, "location_id": loc, "qty": qty, "disposition": disposition})
    return lines


def sale_flow(rng: random.Random, i: int, tag: int) -> Flow:
    """Reserved, fulfilled, then none, one or two linked returns, never more than sold."""
    rid = f"sale-{tag}-{i:03d}"
    positions = rng.sample([(s, loc) for s in SKUS for loc in LOCATIONS], rng.choice((1, 2)))
    lines = sorted((s, loc, rng.randint(1, 3)) for s, loc in positions)
    body = {
        "reservation_id": rid,
        "channel": "web",
        "ttl_seconds": HOLD_TTL_SECONDS,
        "lines": [{"sku": s, "location_id": loc, "qty": q} for s, loc, q in lines],
    }
    steps = [
        Step("reserve", "POST", "/v1/reservations", body, (200, 201)),
        Step("fulfill", "POST", f"/v1/reservations/{rid}/fulfill", None, (200,)),
    ]
    left: dict[str, int] = {}
    for s, _, q in lines:
        left[s] = left.get(s, 0) + q
    for n in range(rng.choice((0, 1, 1, 2))):
        units = {s: rng.randint(0, q) for s, q in left.items()}
        if not any(units.values()):
            continue
        left = {s: q - units[s] for s, q in left.items()}
        ret: dict[str, Any] = {"return_id": f"{rid}-r{n}", "reservation_id": rid}
        ret["lines"] = return_lines(rng, units)
        steps.append(Step(f"{rid}-r{n}", "POST", "/v1/returns", ret, (200, 201)))
    return Flow("sale", rid, steps)


def till_return_flow(rng: random.Random, i: int, tag: int) -> Flow:
    return_id = f"till-{tag}-{i:03d}"
    units = {s: rng.randint(1, 3) for s in rng.sample(SKUS, rng.choice((1, 2)))}
    body = {"return_id": return_id, "lines": return_lines(rng, units)}
    return Flow(
        "till return", return_id, [Step(return_id, "POST", "/v1/returns", body, (201, 200))]
    )


def make_flows(tag: int) -> list[Flow]:
    rng = random.Random(tag)
    flows = [transfer_flow(rng, i, tag) for i in range(TRANSFERS)]
    flows += [sale_flow(rng, i, tag) for i in range(SALES)]
    flows += [till_return_flow(rng, i, tag) for i in range(TILL_RETURNS)]
    rng.shuffle(flows)
    return flows


class ShelfDriver(Driver):
    """The crash tests' driver (retries, acknowledgements, the kill threshold) running flows
    of the stock beyond the shelf."""

    def __init__(self, client: httpx.AsyncClient, flows: list[Flow], kill_after: int) -> None:
        super().__init__(client, [], kill_after)
        self.shelf_flows = flows

    async def run_shelf_flow(self, flow: Flow) -> None:
        for step in flow.steps:
            response = await self.call(step.method, step.path, step.body)
            if response is None:
                flow.unacked = step.name
                return
            if response.status_code not in step.ok:
                self.unexpected.append(f"{step.method} {step.path}: {response.text}")
                return
            flow.acked.append(step.name)
            self._ack()

    async def run(self) -> None:
        queue: asyncio.Queue[Flow] = asyncio.Queue()
        for flow in self.shelf_flows:
            queue.put_nowait(flow)

        async def work() -> None:
            while not queue.empty():
                await self.run_shelf_flow(queue.get_nowait())

        try:
            await asyncio.gather(*(work() for _ in range(16)))
        finally:
            self.finished = True


@dataclass
class ShelfCrash:
    victim: str
    acks_after_restart: int
    driver: ShelfDriver
    flows: list[Flow]


async def shelf_load_with_crash(stack: Stack, victim: str) -> ShelfCrash:
    """Seed, run the load, SIGKILL ``victim`` after KILL_AFTER_ACKS acknowledgements, restart
    it, let the load finish."""
    flows = make_flows(random.randrange(1_000_000))
    async with api_client(stack) as client:
        await seed(client, stack.domain)
        driver = ShelfDriver(client, flows, KILL_AFTER_ACKS)
        load = asyncio.create_task(driver.run())
        try:
            await asyncio.wait_for(driver.threshold.wait(), timeout=LOAD_TIMEOUT)
            assert not driver.finished, "the load finished before the kill: make it longer"
            await kill_and_restart(stack, victim)
            acks_at_restart = driver.acks
            await asyncio.wait_for(asyncio.shield(load), timeout=LOAD_TIMEOUT)
            await stack.redis.restore()
        except TimeoutError as exc:
            raise AssertionError(
                f"the load did not finish: {driver.acks} acknowledged, the last failure "
                f"{driver.last_failure}\n{stack.log_tails()}"
            ) from exc
        finally:
            if not load.done():
                load.cancel()
                await asyncio.gather(load, return_exceptions=True)
    return ShelfCrash(victim, driver.acks - acks_at_restart, driver, flows)


@dataclass
class ShelfSettled:
    """What Redis and the ledger hold once the load is over and the outbox is drained."""

    transfers: dict[str, dict[str, str]]  # the flows' transfers in Redis (absent: never made)
    returns: dict[str, dict[str, str]]  # the flows' returns in Redis
    reservations: dict[str, dict[str, str]]  # the flows' reservations in Redis
    positions: dict[Position, dict[str, int]]  # bucket name -> units, in Redis
    movements: list[Any]  # every movement of the namespace in the ledger


async def settle_shelf(stack: Stack, flows: list[Flow]) -> ShelfSettled:
    """Wait for the worker to drain the outbox into the ledger, then read back the flows'
    records and every position's buckets from Redis, and the movements from the ledger."""
    keys = stack.keys
    returns = [
        s.name for f in flows if f.kind != "transfer" for s in f.steps if s.path == "/v1/returns"
    ]
    transfers = [f.key for f in flows if f.kind == "transfer"]
    sales = [f.key for f in flows if f.kind == "sale"]
    positions = [(s, loc) for s in SKUS for loc in LOCATIONS]
    client = stack.redis.client()
    try:
        await wait_drained(stack, client)
        async with client.pipeline(transaction=False) as pipe:
            for tid in transfers:
                pipe.hgetall(keys.transfer(tid))
            for return_id in returns:
                pipe.hgetall(keys.stock_return(return_id))
            for rid in sales:
                pipe.hgetall(keys.reservation(rid))
            for sku, loc in positions:
                pipe.hmget(keys.position(sku, loc), *FIELDS)
            rows = await pipe.execute()
    finally:
        await client.aclose()
    found = iter(rows)
    return ShelfSettled(
        transfers={tid: h for tid in transfers if (h := next(found))},
        returns={return_id: h for return_id in returns if (h := next(found))},
        reservations={rid: h for rid in sales if (h := next(found))},
        positions={
            p: {b: int(v or 0) for b, v in zip(BUCKETS, next(found), strict=True)}
            for p in positions
        },
        movements=await asyncio.to_thread(fetch_movements, stack.engine, stack.ledger_namespace),
    )


def fetch_movements(engine: Engine, namespace: str) -> list[Any]:
    m = MOVEMENTS.c
    columns = (m.event_id, m.kind, m.sku, m.location_id, m.seq, m.reservation_id, m.qty)
    deltas = (m.d_on_hand, m.d_reserved, m.d_damaged, m.d_quality_control, m.d_in_transit)
    with engine.connect() as conn:
        rows = conn.execute(select(*columns, *deltas, m.details).where(m.namespace == namespace))
        return list(rows)


def details(movement: Any) -> dict[str, str]:
    return json.loads(movement.details) if movement.details else {}
