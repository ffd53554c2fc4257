"""The ledger-lag benchmark: its sampler against a real server, its verdict on a run, and a
short run end to end (no timing is asserted)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis

from bench.harness.cpu import CpuSample
from bench.harness.lag_sampler import LagSample, LagSampler
from bench.harness.servers import BenchRedis
from bench.load.wrk_runner import WrkResult, find_wrk
from bench.scenarios.ledger.drain import Target
from bench.scenarios.ledger.lag import CONNECTIONS, Saturation, rows_of, saturate
from stocksync.workers.ledger_copy import GROUP


@pytest.fixture
def stream(redis_url: str, namespace: str) -> Iterator[tuple[Redis, str]]:
    client = Redis.from_url(redis_url, decode_responses=True)
    name = f"{namespace}:outbox"
    client.xgroup_create(name, GROUP, id="0", mkstream=True)
    yield client, name
    client.delete(name)
    client.close()


def test_lag_sampler_counts_pending_and_undelivered_entries(
    redis_url: str, stream: tuple[Redis, str]
) -> None:
    client, name = stream
    ids = [client.xadd(name, {"n": str(i)}) for i in range(5)]
    client.xreadgroup(GROUP, "w1", {name: ">"}, count=2)  # 2 pending, 3 undelivered
    with LagSampler(redis_url, name) as sampler:
        behind = sampler.sample()
        client.xack(name, GROUP, *ids[:2])
        after_ack = sampler.sample()
        client.xreadgroup(GROUP, "w1", {name: ">"})
        client.xack(name, GROUP, *ids)
        caught_up = sampler.sample()
    assert (behind.events, behind.capped) == (5, False)
    assert behind.seconds >= 0
    assert after_ack.events == 3
    assert (caught_up.events, caught_up.seconds) == (0, 0.0)


def test_lag_sampler_counts_by_range_when_the_server_cannot_say_the_lag(
    redis_url: str, stream: tuple[Redis, str]
) -> None:
    """An entry deleted past the group's position makes XINFO's ``lag`` unknown (nil)."""
    client, name = stream
    ids = [client.xadd(name, {"n": str(i)}) for i in range(4)]
    client.xreadgroup(GROUP, "w1", {name: ">"}, count=1)
    client.xdel(name, ids[2])
    with LagSampler(redis_url, name) as sampler:
        sample = sampler.sample()
    assert sample.events == 3  # 1 pending + 2 still there to deliver
    assert not sample.capped


def sample(at: float, events: int) -> LagSample:
    return LagSample(at, "sqlite", events, 0.0, False)


def saturation(samples: list[LagSample], events_added: int = 1000) -> Saturation:
    wrk = WrkResult(10.0, 1000, 1000, 0, 0, 0, 1.0, (), CpuSample())
    target = Target("SQLite", "sqlite://", "FULL")
    return Saturation(target, wrk, events_added, samples, samples[-1], 0.1, 0.0)


def test_saturation_calls_a_lag_that_keeps_growing_unbounded() -> None:
    growing = saturation([sample(t, 10 * t) for t in range(10)])
    assert growing.thirds() == (30, 90)
    assert not growing.bounded


def test_saturation_calls_a_steady_or_tiny_lag_bounded() -> None:
    assert saturation([sample(t, 40 + (t % 3)) for t in range(10)]).bounded
    # 1,000 events in 10 s = 100/s: a last third of 5 events is 0.05 s of traffic
    assert saturation([sample(t, 0 if t < 7 else 5) for t in range(10)]).bounded
    assert saturation([sample(t, 1) for t in range(10)]).traffic_s(100) == 1.0


@pytest.mark.slow
@pytest.mark.skipif(find_wrk() is None, reason="wrk is not installed (apt-get install wrk)")
def test_saturate_measures_a_short_run_and_its_drain(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with BenchRedis("always", tmp_path_factory.mktemp("lag")) as redis:
        work_dir = redis.dir / "lag"
        target = Target("SQLite", f"sqlite:///{work_dir / 'ledger.db'}", "FULL")
        run = saturate(redis, target, seconds=2, warmup=1, work_dir=work_dir)
    assert run.wrk.ok > 0
    assert run.wrk.errors == 0
    # One outbox event per single-line reservation; those in flight when wrk stopped count too.
    assert run.wrk.ok <= run.events_added <= run.wrk.ok + CONNECTIONS
    assert len(run.samples) >= 2
    assert run.drain_s is not None  # the writer caught up after the load
    assert [r.scenario.split(" ->")[0] for r in rows_of(run)] == [
        "HTTP POST /v1/reservations at saturation (lag run",
        "ledger lag at saturation",
        "ledger lag trend",
        "ledger drain after saturation",
    ]
