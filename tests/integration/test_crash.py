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
import json
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import Engine

from stocksync.domain.model import Line as DomainLine
from stocksync.ledger.writer import SqlLedger
from stocksync.metrics import Metrics
from stocksync.recovery.audit import audit
from stocksync.store.keys import Keys
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_writer import drain_once, read_entries
from tests.support.crash_load import (
    FLOWS,
    INITIAL_ON_HAND,
    LOCATIONS,
    SKUS,
    Crash,
    Line,
    Position,
    api_client,
    fetch_ledger,
    load_with_crash,
    wait_drained,
)
from tests.support.processes import Processes, Stack, running_stack
from tests.support.serve import stocksync_cli
from tests.support.store import Stocked

pytestmark = pytest.mark.slow

ACTIVE = frozenset({"held", "confirmed", "ready"})


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.kill_all()


@pytest.fixture
async def stack(tmp_path: Path, processes: Processes) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, processes) as running:
        yield running


# -- after the load: check -------------------------------------------------------------


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
