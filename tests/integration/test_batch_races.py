"""Group commit under real races and a real crash: several processes, each with its own
batcher, fight for the last units; and redis-server is SIGKILLed while batches are in flight."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from stocksync.config import Settings
from stocksync.domain.errors import InsufficientStock
from stocksync.domain.model import Line, Location
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.redis_store import RedisStockStore
from tests.support.ports import free_port
from tests.support.store import Stocked

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 3
PER_PROCESS = 60
UNITS = 50
CHILD_TIMEOUT = 60.0
CALLERS = 32
KILL_AFTER_ACKS = 300


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


def spawn_child(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.batch_child", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def test_processes_racing_for_the_last_units_have_exactly_that_many_winners(
    redis_url: str,
    namespace: str,
    stocked: Stocked,
    sku: str,
    children: list[subprocess.Popen[str]],
) -> None:
    await stocked(sku, UNITS)
    for p in range(PROCESSES):
        args = [redis_url, namespace, sku, str(PER_PROCESS), f"p{p}"]
        children.append(spawn_child(args))
    for child in children:  # every process is connected before any starts
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), CHILD_TIMEOUT)
        assert line.strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    reports = []
    for child in children:
        out, _ = await asyncio.wait_for(asyncio.to_thread(child.communicate), CHILD_TIMEOUT)
        assert child.returncode == 0
        reports.append(json.loads(out.strip().splitlines()[-1]))
    won = [rid for r in reports for rid in r["won"]]
    lost = [rid for r in reports for rid in r["lost"]]
    assert len(won) == UNITS
    assert len(won) + len(lost) == PROCESSES * PER_PROCESS
    assert all(max(r["sizes"]) > 1 for r in reports)  # each process really batched
    store_client = Redis.from_url(redis_url, decode_responses=True)
    try:
        store = RedisStockStore(store_client, Settings(namespace=namespace))
        position = await store.position(sku, "store-a")
        assert (position.reserved, position.available) == (UNITS, 0)
        held = {rid for rid in won if await store_client.exists(store.keys.reservation(rid))}
        assert held == set(won)
    finally:
        await store_client.aclose()


async def test_a_server_killed_mid_batch_keeps_every_acknowledged_reservation(
    tmp_path: Path,
) -> None:
    """SIGKILL redis-server (``appendfsync always``) while batches are in flight, restart it on
    its AOF: every acknowledged reservation is there, none answered with a refusal is."""
    server = EmbeddedRedis(tmp_path, port=free_port(), appendonly=True, appendfsync="always")
    server.start()
    client = Redis.from_url(server.url, decode_responses=True)
    try:
        store = RedisStockStore(client, Settings(namespace="crash"))
        await store.load_library()
        await store.upsert_location(Location("store-a", "A", "store"))
        await store.set_count("SKU", "store-a", 10_000)
        acked: set[str] = set()
        refused: set[str] = set()
        unknown: set[str] = set()
        ids = itertools.count()
        kill_now = threading.Event()

        def killer() -> None:  # off the event loop: the kill lands wherever the batches are
            if kill_now.wait(CHILD_TIMEOUT):
                assert server.process is not None
                server.process.kill()

        async def caller() -> None:
            while True:
                i = next(ids)
                qty = 100_000 if i % 7 == 0 else 1  # refused, beside acknowledged neighbours
                try:
                    await store.reserve(f"r{i}", "web", [Line("SKU", "store-a", qty)], 600)
                except InsufficientStock:
                    refused.add(f"r{i}")
                except (RedisError, OSError):
                    unknown.add(f"r{i}")  # the reply was lost: it may or may not have applied
                    return
                else:
                    acked.add(f"r{i}")
                    if len(acked) >= KILL_AFTER_ACKS:
                        kill_now.set()

        thread = threading.Thread(target=killer)
        thread.start()
        await asyncio.gather(*(caller() for _ in range(CALLERS)))
        thread.join()
        assert kill_now.is_set(), "the load ended before the kill"
        assert refused, "no reservation was refused before the kill"
        assert unknown, "no call met the dead server"
        server.process.wait(timeout=10)  # type: ignore[union-attr]
        await client.aclose()
        server = EmbeddedRedis(tmp_path, port=server.port, appendonly=True, appendfsync="always")
        server.start()
        client = Redis.from_url(server.url, decode_responses=True)
        store = RedisStockStore(client, Settings(namespace="crash"))
        called = acked | refused | unknown
        present = {rid for rid in called if await client.exists(store.keys.reservation(rid))}
        assert acked <= present, f"acknowledged and lost: {sorted(acked - present)[:10]}"
        assert not (refused & present), f"refused and present: {sorted(refused & present)[:10]}"
        held = 0
        for rid in present:
            held += sum(ln.qty for ln in (await store.get_reservation(rid)).lines)
        position = await store.position("SKU", "store-a")
        assert (position.on_hand, position.reserved) == (10_000, held)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()
        server.stop()
