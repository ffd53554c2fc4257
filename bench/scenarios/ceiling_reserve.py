"""Part of the ``ceiling`` section: reservations/s through ``RedisStockStore.reserve`` with 32
concurrent asyncio callers, beside 32 concurrent INCR callers on the same kind of pool, and what
Redis spends per reservation (``INFO commandstats``).

Each reserve is one call of the public store method, so whatever the store does to carry many
concurrent reservations in one script call (batching) shows here as more reservations per
second and fewer Redis µs per reservation. The Redis figures do not assume how the store calls
its scripts: EVAL, EVALSHA, FCALL and FCALL_RO are all counted, and their total time is divided
by the reservations made, not by the calls. A script call's time includes the commands it runs
(which commandstats also counts under their own names, so those are not added again).
"""

from __future__ import annotations

import itertools

from bench.harness.aio import run_async
from bench.harness.config import CHANNEL, HOT_LOCATION, HOT_SKU, TTL_SECONDS, Profile
from bench.harness.cpu import CpuWindow, self_cpu_seconds
from bench.harness.report import Row
from bench.harness.servers import BenchRedis
from bench.harness.stats import Latency
from bench.scenarios.ceiling import Step, Tally, closed_loop, incr_step, open_client, seed
from stocksync.config import Settings
from stocksync.domain.model import Line
from stocksync.store.redis_store import RedisStockStore

TARGET_RATIO = 1.0  # batched: more reservations per second than single INCR round trips
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
_run_ids = itertools.count()


class Counted:
    """A reserve step that counts the reservations it made (warm-up and window alike)."""

    def __init__(self, store: RedisStockStore, tag: str) -> None:
        self.store = store
        self.tag = tag
        self.made = 0
        self.lines = [Line(HOT_SKU, HOT_LOCATION, 1)]

    async def __call__(self, task_id: int, i: int) -> object:
        reservation_id = f"{self.tag}-{task_id}-{i}"
        result = await self.store.reserve(reservation_id, CHANNEL, self.lines, TTL_SECONDS)
        self.made += 1
        return result


def redis_cost(commandstats: dict[str, object], reservations: int) -> dict[str, object]:
    """Redis µs per reservation (the script calls' time over the reservations made) and the
    script command's own µs per call, whether EVAL(SHA) or FCALL(_RO)."""
    scripts = {
        name.removeprefix("cmdstat_"): value
        for name, value in commandstats.items()
        if isinstance(value, dict) and name.removeprefix("cmdstat_") in SCRIPT_COMMANDS
    }
    script_calls = sum(int(v.get("calls", 0)) for v in scripts.values())
    script_usec = sum(float(v.get("usec", 0)) for v in scripts.values())
    return {
        "redis_usec_per_reservation": (
            round(script_usec / reservations, 1) if reservations else None
        ),
        "script_usec_per_call": round(script_usec / script_calls, 1) if script_calls else None,
        "script_commands": sorted(scripts),
        "reservations_per_script_call": (
            round(reservations / script_calls, 2) if script_calls else None
        ),
        "reservations": reservations,
    }


async def compare(
    bench: BenchRedis, concurrency: int, profile: Profile
) -> tuple[Tally, Tally, dict[str, object]]:
    """INCR and reserve slices alternating; the Redis cost of the reserves made after reset."""
    incr_client = await open_client(bench.url, concurrency)
    store_client = await open_client(bench.url, concurrency)
    try:
        store = RedisStockStore(store_client, Settings(namespace="benchreserve"))
        await seed(store)
        reserve = Counted(store, f"r{next(_run_ids)}")
        steps: dict[str, Step] = {"incr": incr_step(incr_client, "bench:incr"), "reserve": reserve}
        tallies = {name: Tally() for name in steps}
        for step in steps.values():
            await closed_loop(step, concurrency, 0.0, profile.script_warmup_s)
        bench.reset_stats()
        reserve.made = 0
        groups = {"redis": lambda: [bench.pid]}
        made_in_windows = 0  # reservations made while the CPU windows were open
        for _ in range(profile.script_rounds):
            for name, step in steps.items():
                window = CpuWindow(groups).start()
                cpu_before = self_cpu_seconds()
                made_before = reserve.made
                samples = await closed_loop(step, concurrency, 0.05, profile.script_slice_s)
                made_in_windows += reserve.made - made_before
                tally = tallies[name]
                tally.cpu += window.stop(self_cpu_seconds() - cpu_before)
                tally.samples += samples
                tally.seconds += profile.script_slice_s
        commandstats = bench.info("commandstats")
        cost = redis_cost(commandstats, reserve.made)
        incr = commandstats.get("cmdstat_incrby")  # redis-py sends INCR as INCRBY
        if isinstance(incr, dict):
            cost["incr_usec_per_call"] = round(float(incr.get("usec_per_call", 0)), 1)
        done = tallies["reserve"]
        if made_in_windows:  # redis-server's CPU (I/O, parsing, fsync too) per reservation
            redis_cpu = done.cpu.seconds.get("redis", 0.0)
            cost["redis_cpu_us_per_reservation"] = round(1e6 * redis_cpu / made_in_windows, 1)
        return tallies["incr"], done, cost
    finally:
        for client in (incr_client, store_client):
            await client.aclose()
            await client.connection_pool.disconnect()


def run(bench: BenchRedis, profile: Profile) -> list[Row]:
    concurrency = profile.reserve_concurrency
    incr, reserve, cost = run_async(compare(bench, concurrency, profile))
    incr_latency = Latency.of_seconds(incr.samples)
    latency = Latency.of_seconds(reserve.samples)
    ratio = reserve.rate / incr.rate if incr.rate else 0.0
    return [
        Row(
            section="ceiling",
            scenario="INCR round trip (baseline of store.reserve)",
            fsync=bench.appendfsync,
            workers=None,
            concurrency=str(concurrency),
            ops_s=incr.rate,
            p50_ms=incr_latency.p50,
            p99_ms=incr_latency.p99,
            cpu=incr.cpu.shares(),
            extra={"redis_usec_per_call": cost.get("incr_usec_per_call")},
        ),
        Row(
            section="ceiling",
            scenario="store.reserve (reservations)",
            fsync=bench.appendfsync,
            workers=None,
            concurrency=str(concurrency),
            ops_s=reserve.rate,
            p50_ms=latency.p50,
            p99_ms=latency.p99,
            baseline="INCR",
            baseline_ops_s=incr.rate,
            target=f">= {TARGET_RATIO:.1f}",
            passed=ratio >= TARGET_RATIO,
            cpu=reserve.cpu.shares(),
            extra=cost,
        ),
    ]
