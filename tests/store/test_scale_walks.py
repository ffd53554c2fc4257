"""Scale: no script walks an unbounded set (Redis runs one script at a time, so a long script
stalls every reservation).

100,000 held carts at one location plus 50 confirmed, a position with thousands of holds, a
capped key at its cap with many due holds and a customer with thousands of holds. SLOWLOG
measures each command's execution time inside the server, so the bounds asserted here are
algorithmic (index reads with a LIMIT, walks with a per-call bound), not wall-clock timings
of the test: no command of the whole run (seeding included) takes more than COMMAND_US_MAX. The
pick list is held to a count rather than a time: the commands its script runs inside the server
(INFO commandstats counts them) stay within PICK_LIST_COMMANDS_PER_ORDER per order listed,
whatever the 100,000 held carts beside them.

SLOWLOG also counts time the server was descheduled or stalled on a page fault: on this kind
of shared VM a call that normally takes 1 ms now and then shows 6-9 ms, at random. Descheduling
only adds, so each bound is checked on the best of several equal instances (a read repeated,
a write done on two equal sets of holds); a walk that grew with the holds would make every
instance slow.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest
from redis.asyncio import Redis

from stocksync.config import Settings
from stocksync.domain.model import Line, Location, State
from stocksync.store.embedded import EmbeddedRedis
from stocksync.store.pickups import PickupOps
from stocksync.store.redis_store import RedisStockStore
from tests.support.ports import free_port
from tests.support.store import server_ms, wait_for_server_ms_after

pytestmark = pytest.mark.slow

T = TypeVar("T")

CARTS = 100_000
CONFIRMED = 50
SKUS = 50  # 2,000 carts a position
CUSTOMER_CARTS = 2_000  # of the carts, those of one customer
KEY_CAP = 1_000  # holds and units of the capped key, all due when it reserves once more
LOCATION = "wh-scale"
PICK_LIST_COMMANDS_PER_ORDER = 4  # index reads and each order's hash, not the held carts
COMMAND_US_MAX = 5_000
PIPELINE = 2_000  # script calls per round trip while seeding
SLOWLOG_LEN = 1_024
CAPPED_KEYS = ("k-big", "k-big2")  # two equal capped keys: the bound holds for the faster
SALE_SKUS = (7, 8)  # two equal positions a till sale leaves short
SEEDING_OUTLIERS_PER = 100  # calls: at most 1 % of them may be descheduled past the bound


@pytest.fixture(scope="module")
def scale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A server of its own, without AOF: the carts need ~200 MB, freed when it stops."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("scale"), port=free_port(), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def scale(scale_server: EmbeddedRedis, namespace: str) -> AsyncIterator[RedisStockStore]:
    client = Redis.from_url(scale_server.url, decode_responses=True)
    before = await client.config_get("slowlog-*")
    settings = Settings(
        namespace=namespace,
        max_active_holds_per_key={"web": KEY_CAP},
        max_held_units_per_location_per_key={"web": KEY_CAP},
        max_active_holds_per_customer=0,
    )
    try:
        yield RedisStockStore(client, settings)
    finally:
        await client.config_set("slowlog-log-slower-than", before["slowlog-log-slower-than"])
        await client.config_set("slowlog-max-len", before["slowlog-max-len"])
        await client.aclose()


async def log_slower_than(client: Redis, micros: int) -> None:
    await client.config_set("slowlog-log-slower-than", micros)
    await client.config_set("slowlog-max-len", SLOWLOG_LEN)
    await client.slowlog_reset()


def _commands_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Calls per command between two INFO commandstats readings (the INFO itself left out)."""
    out = {}
    for name, stats in after.items():
        calls = int(stats["calls"]) - int(before.get(name, {}).get("calls", 0))
        if calls and name != "cmdstat_info":
            out[name] = calls
    return out


async def slow_entries(client: Redis) -> list[tuple[int, str]]:
    """(µs, command) of every entry SLOWLOG kept, slowest first."""
    entries: list[dict[str, Any]] = await client.slowlog_get(SLOWLOG_LEN)
    logged = [(int(e["duration"]), str(e["command"])[:160]) for e in entries]
    return sorted(logged, reverse=True)


async def longest_script_us(client: Redis, step: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """Run ``step`` with every command logged; its result and its longest script call (µs)."""
    await log_slower_than(client, 0)
    result = await step()
    scripts = [us for us, command in await slow_entries(client) if "FCALL" in command]
    await log_slower_than(client, COMMAND_US_MAX)
    assert scripts, "the step ran no script"
    return result, max(scripts)


def sku_of(i: int) -> str:
    return f"SCALE-{i % SKUS:03d}"


def reserve_args(
    reservation_id: str,
    sku: str,
    ttl_ms: int,
    *,
    customer_ref: str = "",
    key_id: str = "",
    confirm: bool = False,
) -> tuple[str, Sequence[str | int]]:
    """reserve.lua's arguments (as Reservations.reserve passes them), without a hold code."""
    lines = json.dumps([[sku, LOCATION, 1]])
    unit_cap = KEY_CAP if key_id else 0
    return "reserve", (
        reservation_id,
        "web",
        ttl_ms,
        "seed",
        customer_ref,
        lines,
        "",
        key_id,
        0,
        0,
        "1" if confirm else "",
        7_200_000 if confirm else "",
        unit_cap,
    )


async def seed(store: RedisStockStore) -> int:
    """The carts, the orders and the capped key's holds; returns how many calls that took."""
    await store.upsert_location(
        Location(LOCATION, "Scale warehouse", "warehouse", 52.5, 13.4, True, True)
    )
    for s in range(SKUS):  # room for every hold below, and 10 units to spare
        await store.set_count(sku_of(s), LOCATION, CARTS // SKUS + KEY_CAP + CONFIRMED + 10)
    calls = [
        reserve_args(
            f"cart-{i:06d}",
            sku_of(i),
            3_600_000,
            customer_ref="crm-big" if i < CUSTOMER_CARTS else "",
        )
        for i in range(CARTS)
    ]
    calls += [reserve_args(f"order-{i:02d}", sku_of(i), 0, confirm=True) for i in range(CONFIRMED)]
    calls += [
        reserve_args(f"{key}-{i:04d}", sku_of(s), 1_000, key_id=key)
        for s, key in enumerate(CAPPED_KEYS, start=1)
        for i in range(KEY_CAP)
    ]
    for start in range(0, len(calls), PIPELINE):
        chunk = calls[start : start + PIPELINE]
        replies = await store.run_pipelined(chunk)
        assert all(reply[0] == "ok" for reply in replies), replies[0]
        # What Reservations.reserve claims beside each hold: the directory routes by it.
        claims = {str(args[0]): "default|0" for _, args in chunk}
        await store.client.hset(store.directory.reservation_domains, mapping=claims)  # type: ignore[misc]
    return len(calls) + SKUS + 1


async def test_scripts_stay_bounded_at_100k_carts_at_one_location(
    scale: RedisStockStore,
) -> None:
    client = scale.client
    ops = PickupOps(scale)
    await log_slower_than(client, COMMAND_US_MAX)
    calls = await seed(scale)
    # SLOWLOG counts time the server was descheduled too: on a shared 2-core machine a few of
    # 100,000 short calls come out slow, at random. A walk that grew with the holds would make
    # every later call slow.
    slow = await slow_entries(client)
    assert len(slow) <= calls // SEEDING_OUTLIERS_PER, slow[:5]

    # The pick list: 50 confirmed among 100,000 held. What its script runs inside the server
    # (commandstats counts a script's own commands) depends on the orders listed, not the carts.
    wanted = [State.CONFIRMED, State.READY]
    await ops.find("loc", LOCATION, states=wanted, limit=1)  # loads the library if needed
    before = await client.info("commandstats")
    pickups = await ops.find("loc", LOCATION, states=wanted, limit=500)
    ran = _commands_between(before, await client.info("commandstats"))
    assert ran.pop("cmdstat_fcall", 0) == 1, ran
    assert 0 < sum(ran.values()) <= PICK_LIST_COMMANDS_PER_ORDER * CONFIRMED, ran
    assert {r.reservation_id for r in pickups} == {f"order-{i:02d}" for i in range(CONFIRMED)}
    deadlines = [r.expires_at_ms or 0 for r in pickups]
    assert deadlines == sorted(deadlines)

    # A till sale leaves 3 units short at a position with 2,000+ holds: the 3 newest are flagged.
    flagged: set[str] = set()
    sale_us = []
    for n, s in enumerate(SALE_SKUS):
        hot = sku_of(s)
        position = await scale.position(hot, LOCATION)
        short = position.on_hand - position.reserved + 3
        sale, us = await longest_script_us(
            client,
            lambda hot=hot, short=short, n=n: scale.adjust(
                hot, LOCATION, -short, reason="sale", source="pos", source_event_id=f"s{n}"
            ),
        )
        sale_us.append(us)
        assert sale.at_risk_reservations == 3
        holds = await client.zrange(scale.keys.holds(hot, LOCATION), 0, -1)
        async with client.pipeline(transaction=False) as pipe:
            for rid in holds:
                pipe.hmget(scale.keys.reservation(rid), "created_at", "at_risk")
            rows = await pipe.execute()
        newest = sorted(
            ((int(r[0]), rid) for rid, r in zip(holds, rows, strict=True)), reverse=True
        )
        here = {rid for rid, r in zip(holds, rows, strict=True) if r[1] == "1"}
        assert here == {rid for _, rid in newest[:3]}
        flagged |= here
    assert min(sale_us) <= COMMAND_US_MAX, sale_us
    at_risk = await ops.find("loc", LOCATION, at_risk_only=True)
    assert {r.reservation_id for r in at_risk} == flagged
    assert {r.reservation_id for r in await ops.find("atrisk")} == flagged

    # Each capped key is at its cap, in holds and in units, and every one of its holds is due.
    await wait_for_server_ms_after(scale, await server_ms(scale) + 1_000)
    capped_us = []
    for s, key in enumerate(CAPPED_KEYS, start=1):
        # 2 units: over the unit cap until due holds are reaped, as the hold cap is (by 1).
        line = Line(sku_of(s), LOCATION, 2)
        again, us = await longest_script_us(
            client,
            lambda key=key, line=line: scale.reserve(f"{key}-new", "web", [line], 60, key_id=key),
        )
        assert again.created
        capped_us.append(us)
    assert min(capped_us) <= COMMAND_US_MAX, capped_us

    # A customer with 2,000 holds: the first 100 by deadline (the API's list limit), and the
    # at-risk ones among them.
    lookups = []
    for _ in range(3):
        mine, us = await longest_script_us(client, lambda: ops.find("cust", "crm-big", limit=100))
        lookups.append(us)
    assert min(lookups) <= COMMAND_US_MAX, lookups
    assert len(mine) == 100
    assert [r.reservation_id for r in mine] == sorted(r.reservation_id for r in mine)
    risky = await ops.find("cust", "crm-big", at_risk_only=True)
    assert {r.reservation_id for r in risky} == {rid for rid in flagged if rid < "cart-002000"}

    # The reaper catches up the capped keys' due holds, a bounded batch per call.
    await log_slower_than(client, COMMAND_US_MAX)
    reaps = 1
    while (await scale.reap()).expired:
        reaps += 1
    for key in CAPPED_KEYS:
        assert await client.zcard(scale.keys.key_reservations(key)) == 1
        assert (await scale.get_reservation(f"{key}-0999")).state is State.EXPIRED
    slow = await slow_entries(client)
    assert len(slow) <= reaps // SEEDING_OUTLIERS_PER, slow
