"""Smoke runs of the benchmark scenarios at tiny sizes: the harness works, both systems sell
exactly the stock. Real servers (bundled redis-server, stocksync serve, the row-lock peer on the
local PostgreSQL, wrk); no timing is asserted."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.harness import pg
from bench.harness.config import QUICK
from bench.harness.seeding import seed_grid
from bench.harness.servers import ApiServer, BenchRedis, create_api_key
from bench.load import spread_driver
from bench.load.spread_gen import OPERATIONS, location_name, sku_name
from bench.peer.server import PeerServer, postgres_pids
from bench.scenarios import ceiling, hot, scale
from bench.scenarios.hot import ours_contender, peer_contender

pytestmark = pytest.mark.slow

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="wrk is not installed (.ci/run installs it: apt-get install wrk)",
)
UNITS = 25
BUYERS = 60


@pytest.fixture(scope="module")
def bench_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchRedis]:
    with BenchRedis("everysec", tmp_path_factory.mktemp("bench-redis")) as redis:
        yield redis


@pytest.fixture(scope="module")
def api(bench_redis: BenchRedis) -> Iterator[ApiServer]:
    data_dir = bench_redis.dir / "api"
    key = create_api_key(bench_redis.url, data_dir)
    with ApiServer(bench_redis.url, data_dir, 1, key) as server:
        yield server


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerServer]:
    reason = pg.unreachable()
    if reason:
        pytest.skip(reason)
    with PeerServer(1, tmp_path_factory.mktemp("peer")) as server:
        yield server


def assert_sold_exactly(race: hot.Race) -> None:
    assert race.reserved == UNITS
    assert race.reservations == UNITS
    assert race.created <= UNITS  # never told more buyers yes than there were units
    assert race.sold_out > 0  # buyers kept coming after the last unit: it was a race
    assert race.errors == 0
    assert hot.exact(race)


@needs_wrk
def test_hot_race_stocksync_sells_exactly_the_stock(
    api: ApiServer, bench_redis: BenchRedis
) -> None:
    who = ours_contender(api, bench_redis)
    assert_sold_exactly(hot.race(who, "FLASH-OURS", UNITS, BUYERS, 30, "smoke-ours"))


@needs_wrk
@pytest.mark.postgres
def test_hot_race_row_lock_peer_sells_exactly_the_stock(peer: PeerServer) -> None:
    who = peer_contender(peer, "synchronous_commit on")
    assert_sold_exactly(hot.race(who, "FLASH-PEER", UNITS, BUYERS, 30, "smoke-peer"))


@pytest.mark.postgres
def test_row_lock_peer_answers_like_stocksync(peer: PeerServer) -> None:
    peer.seed("peer-store", "PEER-SKU", 2)
    headers = {"Authorization": f"Bearer {peer.key}"}
    line = {"sku": "PEER-SKU", "location_id": "peer-store", "qty": 1}

    def body(rid: str, qty: int = 1) -> dict[str, object]:
        return {"reservation_id": rid, "channel": "web", "lines": [line | {"qty": qty}]}

    with httpx.Client(base_url=peer.base_url, headers=headers, timeout=10) as client:
        assert client.post("/v1/reservations", json=body("p-1")).status_code == 201
        assert client.post("/v1/reservations", json=body("p-1")).status_code == 200  # replay
        conflict = client.post("/v1/reservations", json=body("p-1", 2))
        assert conflict.json()["code"] == "idempotency_conflict"
        short = client.post("/v1/reservations", json=body("p-2", 2))
        assert short.status_code == 409
        assert short.headers["content-type"] == "application/problem+json"
        assert short.json()["code"] == "insufficient_stock"
        assert client.post("/v1/reservations/p-1/confirm").json()["state"] == "confirmed"
        assert client.post("/v1/reservations/p-1/fulfill").json()["state"] == "fulfilled"
        assert client.post("/v1/reservations/p-1/release").json()["code"] == "invalid_transition"
        stock = client.get("/v1/availability", params={"sku": "PEER-SKU"}).json()
        assert stock["locations"][0] | {"sku": "PEER-SKU"} == {
            "sku": "PEER-SKU",
            "location_id": "peer-store",
            "on_hand": 1,
            "reserved": 0,
            "safety_stock": 0,
            "available": 1,
        }
        assert (
            client.post(
                "/v1/reservations", json=body("p-3"), headers={"Authorization": "x"}
            ).status_code
            == 401
        )


def run_spread(target: spread_driver.Target) -> spread_driver.SpreadRun:
    return spread_driver.drive(target, 10, 3, 8, 1, 1.5, 0.2, f"smoke-{target.name[0]}")


def assert_every_operation(run: spread_driver.SpreadRun) -> None:
    assert run.errors == 0, run.error_samples
    assert all(run.counts[op] > 0 for op in OPERATIONS), run.counts


def test_spread_load_stocksync_runs_every_operation(
    api: ApiServer, bench_redis: BenchRedis
) -> None:
    locations = [location_name(j) for j in range(3)]
    seed_grid(bench_redis.url, [sku_name(i) for i in range(10)], locations, 1_000)
    target = spread_driver.Target(
        "stocksync", "everysec", 1, api.port, api.key, api.pids, lambda: [bench_redis.pid]
    )
    assert_every_operation(run_spread(target))


@pytest.mark.postgres
def test_spread_load_row_lock_peer_runs_every_operation(peer: PeerServer) -> None:
    peer.seed_grid([sku_name(i) for i in range(10)], [location_name(j) for j in range(3)], 1_000)
    target = spread_driver.Target("peer", "on", 1, peer.port, peer.key, peer.pids, postgres_pids)
    assert_every_operation(run_spread(target))


def test_scale_reports_memory_per_position_and_hold(tmp_path: Path) -> None:
    profile = dataclasses.replace(
        QUICK,
        hot_workers=1,
        scale_positions=(200, 400),
        scale_reservations=50,
        scale_seconds=1.0,
        spread_concurrency=4,
        spread_procs=1,
        spread_warmup_s=0.2,
    )
    with BenchRedis("everysec", tmp_path) as redis:
        rows = scale.run(redis, profile, lambda message: None)
    assert [r.extra["positions"] for r in rows] == [200, 400]
    assert all(float(str(r.extra["bytes_per_position"])) > 0 for r in rows)
    assert float(str(rows[-1].extra["bytes_per_active_hold"])) > 0
    assert rows[-1].passed is not None
    assert all(r.errors == 0 for r in rows)


def test_ceiling_compares_scripts_with_incr_one_by_one_and_pipelined(tmp_path: Path) -> None:
    profile = dataclasses.replace(
        QUICK,
        script_concurrency=(2,),
        script_rounds=1,
        script_slice_s=0.1,
        script_warmup_s=0.05,
        script_pipeline_concurrency=2,
        script_pipeline_batch=10,
    )
    with BenchRedis("everysec", tmp_path) as redis:
        rows = ceiling.run(redis, profile)
    assert [r.concurrency for r in rows] == ["2", "2", "2x10", "2x10"]
    assert all(r.ops_s > 0 for r in rows)
    assert [r.baseline for r in rows] == ["", "INCR", "", "INCR"]
