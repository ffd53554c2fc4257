"""Redis restored from an older snapshot (DESIGN rule 6): the regression is detected before any
write, the SKUs written after the snapshot are frozen (503 stock_regressed, nothing changes),
the others keep working, and a rebuild from the SQL ledger repairs the frozen ones.

Each test runs its own redis-server (AOF on) on a free port with its data in a temporary
directory, and a SQLite ledger. The snapshot is the AOF right after a BGREWRITEAOF (Valkey and
Redis >= 7 keep a multi-part AOF: a manifest, a base file and increments in ``appendonlydir``);
restoring it means stopping the server, putting the old directory back and starting the server
on the same directory and port.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.engine import Engine

from stocksync.api import app as app_module
from stocksync.api.app import create_app
from stocksync.auth.repository import SqlApiKeys
from stocksync.config import Settings
from stocksync.domain.errors import StockRegressed
from stocksync.domain.model import Line, Location, State
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sql_ledger import RESERVATIONS, SqlLedger
from stocksync.metrics import Metrics
from stocksync.recovery.audit import audit
from stocksync.recovery.rebuild import rebuild
from stocksync.recovery.regression import check_regression, redis_behind_ledger
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.keys import Directory
from stocksync.store.recovery import RecoveryOps
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import LedgerCopy
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

SKU_A = "SNAP-A"  # written after the snapshot: sold, held, released
SKU_B = "SNAP-B"  # written after the snapshot: a till adjustment, a sale, a new hold
SKU_C = "SNAP-C"  # not written after the snapshot
LOCATIONS = ("store-a", "store-b")
ON_HAND = 20
ACTIVE = frozenset({"held", "confirmed", "ready"})
TTL = 3600
WAIT_SECONDS = 15.0
POLL_SECONDS = 0.02
AOF_DIR = "appendonlydir"  # the server's default appenddirname


@dataclass
class Rig:
    """Redis (restartable on its directory and port), the ledger and a store on both."""

    root: Path
    redis: EmbeddedRedis
    engine: Engine
    namespace: str
    client: Redis
    store: RedisStockStore
    ledger: SqlLedger
    metrics: Metrics

    @property
    def ops(self) -> RecoveryOps:
        return RecoveryOps(self.store)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "STOCKSYNC_REDIS_URL": self.redis.url,
            "STOCKSYNC_DATABASE_URL": str(self.engine.url),
            "STOCKSYNC_NAMESPACE": self.namespace,
            "STOCKSYNC_DATA_DIR": str(self.root / "data"),
        }

    async def connect(self) -> None:
        self.client = Redis.from_url(self.redis.url, decode_responses=True)
        self.store = RedisStockStore(self.client, Settings(namespace=self.namespace))

    async def drain(self) -> int:
        return await LedgerCopy(
            self.store.outbox, self.ledger, self.metrics, consumer="snap"
        ).drain_once()

    async def restore(self, snapshot: Path) -> None:
        """Stop Redis, put the older AOF back, start Redis on the same directory and port."""
        await self.client.aclose()
        await asyncio.to_thread(self.redis.stop)
        aof_dir = self.redis.data_dir / AOF_DIR
        shutil.rmtree(aof_dir)
        shutil.copytree(snapshot, aof_dir)
        self.redis = EmbeddedRedis(
            self.redis.data_dir, port=self.redis.port, appendonly=True, appendfsync="always"
        )
        await asyncio.to_thread(self.redis.start)
        await self.connect()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    redis = EmbeddedRedis(
        tmp_path / "redis", port=free_port(), appendonly=True, appendfsync="always"
    )
    await asyncio.to_thread(redis.start)
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    create_tables(engine)
    client = Redis.from_url(redis.url, decode_responses=True)
    namespace = "snap" + uuid.uuid4().hex[:8]
    rig = Rig(
        root=tmp_path,
        redis=redis,
        engine=engine,
        namespace=namespace,
        client=client,
        store=RedisStockStore(client, Settings(namespace=namespace)),
        ledger=SqlLedger(engine),
        metrics=Metrics(),
    )
    try:
        yield rig
    finally:
        await rig.client.aclose()
        await asyncio.to_thread(rig.redis.stop)
        engine.dispose()


async def snapshot_aof(rig: Rig) -> Path:
    """BGREWRITEAOF, wait (bounded) until it is done, and copy the AOF aside."""
    await rig.client.bgrewriteaof()
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        info = await rig.client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            break
        assert asyncio.get_running_loop().time() < deadline, "BGREWRITEAOF did not finish"
        await asyncio.sleep(POLL_SECONDS)  # polling Redis for the rewrite to finish
    assert info["aof_last_bgrewrite_status"] == "ok"
    copy = rig.root / "snapshot-aof"
    shutil.copytree(rig.redis.data_dir / AOF_DIR, copy)
    return copy


@dataclass(frozen=True)
class Regressed:
    """What the ledger holds (the truth) when Redis has been restored to the older snapshot."""

    positions: dict[tuple[str, str], tuple[int, int, int]]  # SqlLedger.positions
    seqs: dict[str, int]  # the ledger's max seq per SKU
    redis_seqs_before_restore: dict[str, int]


async def regress(rig: Rig) -> Regressed:
    """Seed, hold, snapshot; then sell, hold, release and adjust A and B (not C), record it
    all in the ledger; then restore the snapshot."""
    store = rig.store
    for loc in LOCATIONS:
        await store.upsert_location(Location(loc, loc.title(), "store", 52.5, 13.4, True, True))
        for sku in (SKU_A, SKU_B, SKU_C):
            await store.set_count(sku, loc, ON_HAND)
    await store.reserve("a-sold", "pos", [Line(SKU_A, "store-a", 2)], TTL)
    await store.reserve("a-released", "web", [Line(SKU_A, "store-b", 1)], TTL)
    await store.reserve("a-kept", "web", [Line(SKU_A, "store-a", 1)], TTL)
    await store.reserve("b-sold", "web", [Line(SKU_B, "store-a", 3)], TTL)
    await store.confirm("b-sold")
    await store.reserve("c-held", "app", [Line(SKU_C, "store-a", 1)], TTL)
    await rig.drain()
    snapshot = await snapshot_aof(rig)

    # After the snapshot: A and B change, C does not.
    await store.fulfill("a-sold")
    await store.release("a-released")
    await store.reserve("a-new", "chat", [Line(SKU_A, "store-b", 2)], TTL)
    await store.adjust(SKU_B, "store-b", -1, reason="sale", source="pos", source_event_id="till-1")
    await store.fulfill("b-sold")
    await store.reserve("b-new", "web", [Line(SKU_B, "store-b", 4)], TTL)
    await store.confirm("b-new")
    await rig.drain()
    redis_seqs = await rig.ops.seqs()
    truth = Regressed(
        positions=rig.ledger.positions(rig.namespace),
        seqs=rig.ledger.max_seq_by_sku(rig.namespace),
        redis_seqs_before_restore=redis_seqs,
    )
    assert truth.seqs == redis_seqs  # everything is in the ledger

    await rig.restore(snapshot)
    older = await rig.ops.seqs()
    assert older[SKU_A] < truth.seqs[SKU_A]
    assert older[SKU_B] < truth.seqs[SKU_B]
    assert older[SKU_C] == truth.seqs[SKU_C]
    return truth


async def namespace_dump(client: Redis, namespace: str) -> dict[str, Any]:
    """Every key of the namespace (its domains' and its directory's) with its serialized value
    (DUMP), to prove nothing changed. The directory's claims of reservation ids are left out:
    a reserve claims its id before its domain's script refuses it (the claim alone reserves
    nothing, and the sweeper drops it once no reservation has that id)."""
    out: dict[str, Any] = {}
    claims = Directory(namespace).reservation_domains
    async for key in client.scan_iter(match=f"ss:{{{namespace}[:}}]*", count=1000):
        if key == claims:
            continue
        dumped = await client.execute_command("DUMP", key, NEVER_DECODE=True)  # type: ignore[no-untyped-call]
        out[key] = (dumped, await client.ttl(key))
    return out


def active_in_ledger(engine: Engine, namespace: str, skus: set[str]) -> dict[str, str]:
    """Active reservations (id -> state) of ``skus`` according to the ledger."""
    r = RESERVATIONS.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(r.reservation_id, r.state, r.lines).where(
                r.namespace == namespace, r.state.in_(sorted(ACTIVE))
            )
        ).all()
    return {
        str(row.reservation_id): str(row.state)
        for row in rows
        if {sku for sku, _, _ in json.loads(row.lines)} & skus
    }


async def active_in_redis(rig: Rig, skus: set[str]) -> dict[str, str]:
    """Active reservations of ``skus`` per Redis's hold indexes, with their stored state."""
    ids: set[str] = set()
    for sku in skus:
        for loc in LOCATIONS:
            members = await rig.client.zrange(rig.store.keys.holds(sku, loc), 0, -1)
            ids.update(str(m) for m in members)
    return {i: (await rig.store.get_reservation(i)).state.value for i in sorted(ids)}


async def assert_matches_ledger(rig: Rig, skus: set[str]) -> None:
    """Positions and active reservations of ``skus`` in Redis equal the ledger's."""
    ledger_positions = rig.ledger.positions(rig.namespace)
    for (sku, loc), (on_hand, reserved, _) in ledger_positions.items():
        if sku in skus:
            position = await rig.store.position(sku, loc)
            assert (position.on_hand, position.reserved) == (on_hand, reserved), (sku, loc)
    assert await active_in_redis(rig, skus) == active_in_ledger(rig.engine, rig.namespace, skus)


async def test_restored_older_redis_is_frozen_before_any_write_and_rebuilt(rig: Rig) -> None:
    truth = await regress(rig)

    # Detected before any write: exactly the SKUs written after the snapshot are frozen.
    frozen = await check_regression(rig.ops, rig.engine, rig.namespace, rig.metrics)
    assert sorted(frozen) == [SKU_A, SKU_B]
    assert await rig.ops.regressed() == {SKU_A, SKU_B}
    assert rig.metrics.registry.get_sample_value("stocksync_regressed_skus") == 2
    assert await check_regression(rig.ops, rig.engine, rig.namespace) == []  # already frozen

    # Every write touching a frozen SKU is refused and changes nothing at all.
    before = await namespace_dump(rig.client, rig.namespace)
    with_c = [Line(SKU_C, "store-a", 1), Line(SKU_A, "store-b", 1)]  # all or nothing
    refused = [
        rig.store.reserve("a-late", "web", [Line(SKU_A, "store-a", 1)], TTL),
        rig.store.reserve("ac-late", "web", with_c, TTL),
        rig.store.adjust(SKU_A, "store-a", 5, reason="receipt", source="wms", source_event_id="r1"),
        rig.store.adjust(SKU_B, "store-b", -1, reason="sale", source="pos", source_event_id="t9"),
        rig.store.set_count(SKU_B, "store-a", 50),
        rig.store.fulfill("b-sold"),  # confirmed in the snapshot, sold since
        rig.store.release("a-kept"),
        rig.store.extend("a-kept", 60),
    ]
    for call in refused:
        with pytest.raises(StockRegressed) as refusal:
            await call
        assert (refusal.value.status, refusal.value.code) == (503, "stock_regressed")
    await rig.store.reap()
    assert await namespace_dump(rig.client, rig.namespace) == before

    # The same through HTTP (the app's own start-up check finds nothing new to freeze).
    async with Serving(rig) as http:
        body = {
            "reservation_id": "a-http",
            "channel": "web",
            "lines": [{"sku": SKU_A, "location_id": "store-a", "qty": 1}],
        }
        r = await http.post("/v1/reservations", json=body)
        assert (r.status_code, r.json()["code"]) == (503, "stock_regressed")
        receipt = {"delta": 1, "reason": "receipt", "source": "wms", "source_event_id": "h1"}
        r = await http.post(f"/v1/stock/store-b/{SKU_B}/adjustments", json=receipt)
        assert (r.status_code, r.json()["code"]) == (503, "stock_regressed")
        body["lines"] = [{"sku": SKU_C, "location_id": "store-b", "qty": 1}]
        body["reservation_id"] = "c-http"
        r = await http.post("/v1/reservations", json=body)
        assert (r.status_code, r.json()["state"]) == (201, "held")
    assert await namespace_dump(rig.client, rig.namespace) != before  # C changed

    # A SKU not written after the snapshot is not frozen and still accepts writes.
    assert (await rig.store.reserve("c-late", "web", [Line(SKU_C, "store-a", 2)], TTL)).created
    await rig.store.adjust(SKU_C, "store-b", 3, reason="receipt", source="wms", source_event_id="c")
    await rig.store.fulfill("c-held")
    await rig.drain()
    assert await rig.ops.regressed() == {SKU_A, SKU_B}

    # Rebuild from the ledger: positions and active reservations are the ledger's again.
    results = await rebuild(rig.ops, rig.engine, rig.namespace)
    assert sorted(r.sku for r in results) == [SKU_A, SKU_B]
    assert {r.sku: r.seq for r in results} == {s: truth.seqs[s] for s in (SKU_A, SKU_B)}
    assert await rig.ops.regressed() == set()
    for sku in (SKU_A, SKU_B):
        for loc in LOCATIONS:
            position = await rig.store.position(sku, loc)
            on_hand, reserved, _ = truth.positions[(sku, loc)]
            assert (position.on_hand, position.reserved) == (on_hand, reserved), (sku, loc)
    await assert_matches_ledger(rig, {SKU_A, SKU_B})
    assert set(await active_in_redis(rig, {SKU_A})) == {"a-kept", "a-new"}
    assert await active_in_redis(rig, {SKU_B}) == {"b-new": "confirmed"}
    assert await check_regression(rig.ops, rig.engine, rig.namespace) == []

    # Writes work again, and land in the ledger in order.
    assert (await rig.store.reserve("a-after", "web", [Line(SKU_A, "store-a", 1)], TTL)).created
    await rig.store.fulfill("a-new")
    await rig.store.adjust(SKU_B, "store-a", 2, reason="receipt", source="wms", source_event_id="b")
    await rig.store.release("b-new")
    await rig.drain()
    await assert_matches_ledger(rig, {SKU_A, SKU_B, SKU_C})
    assert rig.ledger.max_seq_by_sku(rig.namespace) == await rig.ops.seqs()
    report = await audit(rig.store, rig.engine, rig.namespace)
    assert (report.positions, report.in_flight, report.drifts) == (6, 0, [])


async def test_cli_rebuild_repairs_the_frozen_skus(rig: Rig) -> None:
    truth = await regress(rig)
    assert sorted(await check_regression(rig.ops, rig.engine, rig.namespace)) == [SKU_A, SKU_B]

    done = await asyncio.to_thread(cli, rig, "rebuild")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rebuilt {SKU_A}: seq {truth.seqs[SKU_A]}" in done.stdout, done.stdout
    assert f"rebuilt {SKU_B}: seq {truth.seqs[SKU_B]}" in done.stdout, done.stdout
    assert SKU_C not in done.stdout
    assert await rig.ops.regressed() == set()
    await assert_matches_ledger(rig, {SKU_A, SKU_B, SKU_C})
    assert (await rig.store.reserve("a-after", "web", [Line(SKU_A, "store-a", 1)], TTL)).created
    await rig.drain()
    report = await audit(rig.store, rig.engine, rig.namespace)
    assert (report.positions, report.in_flight, report.drifts) == (6, 0, [])

    again = await asyncio.to_thread(cli, rig, "rebuild")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to rebuild" in again.stdout


async def test_rebuild_does_not_bring_back_reservations_the_ledger_has_finished(
    rig: Rig,
) -> None:
    """A reservation that was active in the snapshot and finished since (sold, released) is
    terminal in the ledger. After the rebuild Redis must say so too: a client retrying the
    sale (idempotent by design) must get the recorded result, not sell the units again."""
    await regress(rig)
    await check_regression(rig.ops, rig.engine, rig.namespace)
    await rebuild(rig.ops, rig.engine, rig.namespace)
    position = await rig.store.position(SKU_A, "store-a")
    assert (await rig.store.get_reservation("a-sold")).state is State.FULFILLED
    assert (await rig.store.get_reservation("a-released")).state is State.RELEASED
    retried = await rig.store.fulfill("a-sold")
    assert retried.repeated
    assert await rig.store.position(SKU_A, "store-a") == position


async def test_rebuild_keeps_stock_changes_idempotent(rig: Rig) -> None:
    """A till adjustment applied after the snapshot is in the ledger with its
    (source, source_event_id). After the rebuild, the till retrying it must get a replay, not
    a second decrement (DESIGN rule 3)."""
    await regress(rig)
    await check_regression(rig.ops, rig.engine, rig.namespace)
    await rebuild(rig.ops, rig.engine, rig.namespace)
    position = await rig.store.position(SKU_B, "store-b")
    retried = await rig.store.adjust(
        SKU_B, "store-b", -1, reason="sale", source="pos", source_event_id="till-1"
    )
    assert retried.replayed
    assert await rig.store.position(SKU_B, "store-b") == position


def cli(rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stocksync.cli", *args],
        env=rig.env,
        cwd=rig.root,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_api_without_workers_freezes_and_counts_but_leaves_the_gauge_to_the_workers(
    rig: Rig,
) -> None:
    """The API's start-up check is its only one when the workers run elsewhere: a gauge it set
    would still say "2 frozen" after the rebuild. It counts the freeze; the gauge stays 0."""
    await regress(rig)
    serving = Serving(rig)
    async with serving as http:
        body = {
            "reservation_id": "a-frozen",
            "channel": "web",
            "lines": [{"sku": SKU_A, "location_id": "store-a", "qty": 1}],
        }
        r = await http.post("/v1/reservations", json=body)
        assert (r.status_code, r.json()["code"]) == (503, "stock_regressed")
    registry = serving.app.state.metrics.registry
    assert registry.get_sample_value("stocksync_stock_regressed_total") == 2
    assert registry.get_sample_value("stocksync_regressed_skus") == 0

    # A process that checks periodically (the workers, here and in `stocksync worker`) does
    # export it.
    metrics = Metrics()
    assert await check_regression(rig.ops, rig.engine, rig.namespace, metrics) == []
    assert metrics.registry.get_sample_value("stocksync_regressed_skus") == 2


class Serving:
    """The real app (its lifespan: start-up regression check, no workers) over ASGI, with an
    admin key. The lifespan's task group must be entered and exited by one task: a helper
    task owns it."""

    def __init__(self, rig: Rig) -> None:
        settings = Settings(
            redis_url=rig.redis.url,
            database_url=str(rig.engine.url),
            data_dir=rig.root / "data",
            namespace=rig.namespace,
            run_workers=False,
            redis_pool_size=4,
        )
        self.app: FastAPI = create_app(settings)
        self.key, _ = SqlApiKeys(rig.engine).create("snap", "admin")
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        started = asyncio.Event()

        async def run() -> None:
            async with self.app.router.lifespan_context(self.app):
                started.set()
                await self.stop.wait()

        self.task = asyncio.create_task(run())
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({self.task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done():
            waiter.cancel()
            self.task.result()  # the start-up error
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://stocksync.test",
            headers={"Authorization": f"Bearer {self.key}"},
        )
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        assert self.client is not None
        assert self.task is not None
        await self.client.aclose()
        self.stop.set()
        await self.task


async def test_api_serves_while_its_start_up_check_runs_and_then_freezes_what_it_found(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One SKU behind the ledger while the outbox stream is not (the guard passes): the API
    answers at once, the per-SKU check runs in the background (held at a gate the test opens)
    and freezes the SKU when it gets there."""
    store = rig.store
    await store.upsert_location(Location("store-a", "A", "store", 52.5, 13.4, True, True))
    for sku in (SKU_A, SKU_C):
        await store.set_count(sku, "store-a", ON_HAND)
    await rig.drain()
    assert not await redis_behind_ledger(rig.ops, rig.engine, rig.namespace)
    await rig.client.hset(store.keys.seq, SKU_A, 0)  # A alone went back in time

    gate, done = asyncio.Event(), asyncio.Event()
    real = app_module.startup_regression_check

    async def gated(*args: Any, **kwargs: Any) -> list[str]:
        await gate.wait()
        try:
            return await real(*args, **kwargs)
        finally:
            done.set()

    monkeypatch.setattr(app_module, "startup_regression_check", gated)
    async with Serving(rig) as http:
        assert (await http.get("/healthz")).status_code == 200
        r = await http.get(f"/v1/stock/store-a/{SKU_C}")
        assert (r.status_code, r.json()["on_hand"]) == (200, ON_HAND)
        assert not done.is_set()  # served before the check ran
        gate.set()
        await asyncio.wait_for(done.wait(), WAIT_SECONDS)
        assert await rig.ops.regressed() == {SKU_A}
        body = {
            "reservation_id": "a-after-check",
            "channel": "web",
            "lines": [{"sku": SKU_A, "location_id": "store-a", "qty": 1}],
        }
        r = await http.post("/v1/reservations", json=body)
        assert (r.status_code, r.json()["code"]) == (503, "stock_regressed")
    assert await rig.client.exists(store.keys.lease("regression")) == 0  # released


async def test_guard_sees_a_restored_redis_behind_the_ledger(rig: Rig) -> None:
    await regress(rig)  # restored: the outbox stream is older than the ledger's newest event
    assert await redis_behind_ledger(rig.ops, rig.engine, rig.namespace)
