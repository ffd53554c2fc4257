"""The ``ceiling`` section: the script path through redis-py asyncio, against raw INCR round trips
on the same kind of client: what fraction of the Redis ceiling the script path reaches.

Both run on a ``redis.asyncio`` client over a ``BlockingConnectionPool`` (decode_responses,
hiredis) sized to the concurrency, with that many asyncio tasks sharing it. Each script call of a
reserve+release pair counts as one call, so script calls/s compare directly with INCR calls/s.
INCR slices and script slices alternate, so noise from the shared machine lands on both.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from bench.harness.aio import run_async
from bench.harness.config import CHANNEL, HOT_LOCATION, HOT_SKU, ON_HAND, TTL_SECONDS, Profile
from bench.harness.cpu import CpuSample, CpuWindow, self_cpu_seconds
from bench.harness.report import Row
from bench.harness.servers import BenchRedis
from bench.harness.stats import Latency
from stocksync.config import Settings
from stocksync.domain.codes import new_hold_code
from stocksync.domain.model import Line, Location, normalize_lines, reservation_fingerprint
from stocksync.store.redis_store import RedisStockStore

TARGET_RATIO = 0.80
HEAD = (7 * 24 * 3600, 0)  # the store's default script head: retention seconds, outbox cap
ACTOR = "bench"  # every script call ends with who acts (see _lib.lua)
Step = Callable[[int, int], Awaitable[object]]
_run_ids = itertools.count()


@dataclass
class Tally:
    """Calls completed inside measurement windows, their latencies and the CPU spent."""

    seconds: float = 0.0
    samples: list[float] = field(default_factory=list)  # one per step (a call, or a pipeline)
    cpu: CpuSample = field(default_factory=CpuSample)
    calls_per_step: int = 1

    @property
    def rate(self) -> float:
        """Calls per second."""
        return len(self.samples) * self.calls_per_step / self.seconds if self.seconds else 0.0


async def closed_loop(step: Step, concurrency: int, warmup: float, duration: float) -> list[float]:
    """Run ``concurrency`` tasks calling ``step`` back to back; latencies of calls in the window."""
    window_start = perf_counter() + warmup
    window_end = window_start + duration
    samples: list[float] = []

    async def worker(task_id: int) -> None:
        for i in itertools.count():
            began = perf_counter()
            if began >= window_end:
                return
            await step(task_id, i)
            ended = perf_counter()
            if began >= window_start and ended <= window_end:
                samples.append(ended - began)

    await asyncio.gather(*(worker(t) for t in range(concurrency)))
    return samples


async def open_client(url: str, size: int) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url, max_connections=size, timeout=10.0, decode_responses=True
    )
    client = Redis(connection_pool=pool)
    await asyncio.gather(*(client.ping() for _ in range(size)))  # warm: open every connection
    return client


def incr_step(client: Redis, key: str) -> Step:
    async def step(task_id: int, i: int) -> object:
        return await client.incr(key)

    return step


def pair_step(store: RedisStockStore, tag: str) -> Step:
    """Even calls reserve one unit of the hot SKU, odd calls release that reservation."""
    lines = [Line(HOT_SKU, HOT_LOCATION, 1)]

    async def step(task_id: int, i: int) -> object:
        reservation_id = f"{tag}-{task_id}-{i // 2}"
        if i % 2 == 0:
            return await store.reserve(reservation_id, CHANNEL, lines, TTL_SECONDS)
        return await store.release(reservation_id)

    return step


def pipelined_incr_step(client: Redis, key: str, batch: int) -> Step:
    """``batch`` INCRs in one pipeline: one step, ``batch`` calls."""

    async def step(task_id: int, i: int) -> object:
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(batch):
                pipe.incr(key)
            return await pipe.execute()

    return step


def pipelined_pair_step(client: Redis, store: RedisStockStore, tag: str, batch: int) -> Step:
    """``batch`` // 2 reserves then as many releases, each the store's script, in one pipeline.

    The arguments are built as ``RedisStockStore.reserve``/``.release`` build them; replies are
    checked, so a refused call cannot pass for a fast one.
    """
    function = store.library.function
    lines = normalize_lines([Line(HOT_SKU, HOT_LOCATION, 1)])
    fp = reservation_fingerprint(CHANNEL, lines, TTL_SECONDS, None)
    lines_json = json.dumps([[ln.sku, ln.location_id, ln.qty] for ln in lines])
    tail: list[str | int] = [CHANNEL, TTL_SECONDS * 1000, fp, "", lines_json]
    prefix = [store.keys.anchor]

    async def step(task_id: int, i: int) -> object:
        ids = [f"{tag}-{task_id}-{i}-{k}" for k in range(batch // 2)]
        async with client.pipeline(transaction=False) as pipe:
            for rid in ids:
                code = new_hold_code()
                args = [*HEAD, rid, *tail, code, "", 0, 0, "", "", 0, ACTOR]
                pipe.fcall(function("reserve"), 1, *prefix, *args)
            for rid in ids:
                pipe.fcall(function("release"), 1, *prefix, *HEAD, rid, "", ACTOR)
            replies = await pipe.execute()
        refused = [r for r in replies if r[0] != "ok"]
        if refused:
            raise RuntimeError(f"pipelined script call refused: {refused[0]!r}")
        return replies

    return step


async def seed(store: RedisStockStore) -> None:
    await store.upsert_location(Location(HOT_LOCATION, "Bench store", "store", pickup=True))
    await store.set_count(HOT_SKU, HOT_LOCATION, ON_HAND)


async def compare(
    bench: BenchRedis, concurrency: int, profile: Profile, batch: int = 1
) -> tuple[Tally, Tally, dict[str, dict[str, Any]]]:
    """Alternate INCR and reserve/release slices; returns both tallies and Redis commandstats.

    With ``batch`` > 1 each step is a pipeline of that many calls on both sides.
    """
    incr_client = await open_client(bench.url, concurrency)
    script_client = await open_client(bench.url, concurrency)
    try:
        store = RedisStockStore(script_client, Settings(namespace="benchscript"))
        await store.load_library()
        await seed(store)
        tag = f"s{next(_run_ids)}"
        steps = {
            "incr": incr_step(incr_client, "bench:incr"),
            "script": pair_step(store, tag),
        }
        if batch > 1:
            steps = {
                "incr": pipelined_incr_step(incr_client, "bench:incr", batch),
                "script": pipelined_pair_step(script_client, store, tag, batch),
            }
        tallies = {name: Tally(calls_per_step=batch) for name in steps}
        for step in steps.values():  # warm both paths (script load, pool, allocator)
            await closed_loop(step, concurrency, 0.0, profile.script_warmup_s)
        bench.reset_stats()
        groups = {"redis": lambda: [bench.pid]}
        for _ in range(profile.script_rounds):
            for name, step in steps.items():
                window = CpuWindow(groups).start()
                cpu_before = self_cpu_seconds()
                samples = await closed_loop(step, concurrency, 0.05, profile.script_slice_s)
                tally = tallies[name]
                tally.cpu += window.stop(self_cpu_seconds() - cpu_before)
                tally.samples += samples
                tally.seconds += profile.script_slice_s
        wanted = ("cmdstat_incrby", "cmdstat_evalsha", "cmdstat_fcall")  # INCR is sent as INCRBY
        commands = {
            k.removeprefix("cmdstat_"): v
            for k, v in bench.info("commandstats").items()
            if k in wanted and isinstance(v, dict)
        }
        return tallies["incr"], tallies["script"], commands
    finally:
        for client in (incr_client, script_client):
            await client.aclose()
            await client.connection_pool.disconnect()  # a pool passed in is not closed with it


def run(bench: BenchRedis, profile: Profile) -> list[Row]:
    """Each concurrency one call at a time, then pipelined (when the profile asks for it)."""
    variants = [(concurrency, 1) for concurrency in profile.script_concurrency]
    if profile.script_pipeline_batch > 1:
        variants.append((profile.script_pipeline_concurrency, profile.script_pipeline_batch))
    rows = []
    for concurrency, batch in variants:
        incr, script, commands = run_async(compare(bench, concurrency, profile, batch))
        redis_us = {k: round(float(v.get("usec_per_call", 0)), 1) for k, v in commands.items()}
        incr_latency = Latency.of_seconds(incr.samples)
        script_latency = Latency.of_seconds(script.samples)
        piped = f" pipelined x{batch}" if batch > 1 else ""
        conc = f"{concurrency}x{batch}" if batch > 1 else str(concurrency)
        rows.append(
            Row(
                section="ceiling",
                scenario=f"INCR{piped} round trip (baseline)",
                fsync=bench.appendfsync,
                workers=None,
                concurrency=conc,
                ops_s=incr.rate,
                p50_ms=incr_latency.p50,
                p99_ms=incr_latency.p99,
                cpu=_client_cpu(incr.cpu),
                extra={
                    "redis_usec_per_call": redis_us.get("incrby"),
                    "calls": len(incr.samples) * batch,
                },
            )
        )
        ratio = script.rate / incr.rate if incr.rate else 0.0
        rows.append(
            Row(
                section="ceiling",
                scenario=f"store.reserve+release{piped} (per call)",
                fsync=bench.appendfsync,
                workers=None,
                concurrency=conc,
                ops_s=script.rate,
                p50_ms=script_latency.p50,
                p99_ms=script_latency.p99,
                baseline="INCR",
                baseline_ops_s=incr.rate,
                target=f">= {TARGET_RATIO:.2f}",
                passed=ratio >= TARGET_RATIO,
                cpu=_client_cpu(script.cpu),
                extra={
                    "pairs_s": round(script.rate / 2, 1),
                    "redis_usec_per_call": redis_us.get("fcall", redis_us.get("evalsha")),
                    "calls": len(script.samples) * batch,
                    # Redis time per store call, whatever the batching (FCALL usec / calls)
                    "redis_usec_per_op": _usec_per_op(commands, len(script.samples) * batch),
                },
            )
        )
    return rows


def _usec_per_op(commands: dict[str, dict[str, Any]], calls: int) -> float | None:
    """Redis-side µs per store call, from the script commands' total time over every round."""
    usec = sum(float(commands.get(c, {}).get("usec", 0)) for c in ("fcall", "evalsha"))
    return round(usec / calls, 1) if calls and usec else None


def _client_cpu(sample: CpuSample) -> dict[str, float]:
    return sample.shares()  # "load" is this benchmark process: the redis-py client
