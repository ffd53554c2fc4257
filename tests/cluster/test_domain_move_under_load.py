"""A stock domain's slot moves to another primary (``move_domain``) while reservations and stock
adjustments keep arriving, and a ledger copy keeps reading the domain's outbox.

Callers do what a client of the API does with 503 ``domain_moving`` or a transport error: retry
the same operation (same reservation id, same ``source_event_id``) until it succeeds, which is
safe because every operation is idempotent. Afterwards every operation is applied exactly once:
each reservation held with its lines, each adjustment counted once in ``on_hand``, ``reserved``
equal to the sum of the holds, and the ledger holding each event once; the slot is served by
the target, and new calls are applied there. The test also proves that the move happened under
the load: some calls were refused by the freeze (``DomainMoving``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import RedisCluster
from redis.exceptions import RedisError
from sqlalchemy import select

from stocksync.config import Settings
from stocksync.domain.errors import DomainMoving, ReplicationTimeout
from stocksync.domain.model import Line, Location, State, normalize_lines
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sql_ledger import MOVEMENTS, SqlLedger
from stocksync.metrics import Metrics
from stocksync.store.connection import open_store
from stocksync.store.domain_moves import move_domain
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import LedgerCopy
from tests.support.cluster import ValkeyCluster
from tests.support.cluster_domains import domain_off_directory, domain_slot
from tests.support.crash_load import fetch_ledger

T = TypeVar("T")

RESERVERS = 4
ADJUSTERS = 2
SKUS = ("MOVE-A", "MOVE-B", "MOVE-C")
LOCATIONS = ("store-m1", "store-m2")
STOCK = 1_000_000  # never short: every failure is the move's
FILLER_SKUS = 150  # more keys, so the migration (and the freeze) spans many MIGRATE calls
MIGRATE_BATCH = 10
ACKED_BEFORE_MOVE = 40
ACKED_AFTER_MOVE = 40
TTL = 3600
SOURCE = "move-test"
OPERATION_SECONDS = 60.0  # one operation's retries; the whole move takes a few seconds
PROGRESS_SECONDS = 60.0
# Both the API's 503s and the transport's own failures: retried with the same ids.
RETRYABLE = (DomainMoving, ReplicationTimeout, RedisError, OSError)


class Load:
    """The callers' shared record: what was acknowledged, and why attempts were retried."""

    def __init__(self) -> None:
        self.reservations: dict[str, list[Line]] = {}
        self.adjustments: dict[str, tuple[str, str, int]] = {}  # event id -> sku, loc, delta
        self.retried: Counter[str] = Counter()
        self.stop = asyncio.Event()

    @property
    def acks(self) -> int:
        return len(self.reservations) + len(self.adjustments)

    async def until_acked(self, count: int) -> None:
        """Bounded poll until ``count`` more operations are acknowledged."""
        goal = self.acks + count
        deadline = time.monotonic() + PROGRESS_SECONDS
        while self.acks < goal:
            assert time.monotonic() < deadline, f"{count} more acknowledgements: {self.acks}"
            await asyncio.sleep(0.02)  # polling the callers' progress

    async def retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` until it succeeds (bounded); a retryable failure is counted by type."""
        deadline = time.monotonic() + OPERATION_SECONDS
        delay = 0.01
        while True:
            try:
                return await call()
            except RETRYABLE as exc:
                self.retried[type(exc).__name__] += 1
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)  # back-off between retries of one idempotent call
            delay = min(delay * 2, 0.2)


def lines_of(worker: int, n: int) -> list[Line]:
    first = Line(SKUS[n % len(SKUS)], LOCATIONS[worker % 2], 1 + n % 3)
    if n % 2:
        return [first]
    return [first, Line(SKUS[(n + 1) % len(SKUS)], LOCATIONS[(worker + 1) % 2], 1)]


async def reserver(store: RedisStockStore, load: Load, worker: int) -> None:
    n = 0
    while not load.stop.is_set():
        rid, lines = f"mv{worker}-{n}", lines_of(worker, n)
        n += 1
        result = await load.retrying(partial(store.reserve, rid, "web", lines, ttl_seconds=TTL))
        assert result.reservation.state is State.HELD, rid
        load.reservations[rid] = lines


async def adjuster(store: RedisStockStore, load: Load, worker: int) -> None:
    n = 0
    while not load.stop.is_set():
        event_id = f"adj{worker}-{n}"
        sku, loc, delta = SKUS[n % len(SKUS)], LOCATIONS[(worker + n) % 2], (1, -2, 3)[n % 3]
        n += 1
        await load.retrying(
            partial(
                store.adjust,
                sku,
                loc,
                delta,
                reason="recount",
                source=SOURCE,
                source_event_id=event_id,
            )
        )
        load.adjustments[event_id] = (sku, loc, delta)


async def copier(copy: LedgerCopy, load: Load) -> None:
    """The ledger copy, reading and acknowledging the domain's outbox through the move."""
    while not load.stop.is_set():
        await load.retrying(copy.drain_once)
        await asyncio.sleep(0.05)  # a worker's pace between reads


def adjustment_rows(engine: Any, ledger_namespace: str) -> list[tuple[str, int]]:
    m = MOVEMENTS.c
    stmt = select(m.source_event_id, m.d_on_hand).where(
        (m.namespace == ledger_namespace) & (m.source == SOURCE)
    )
    with engine.connect() as conn:
        return [(str(r[0]), int(r[1])) for r in conn.execute(stmt)]


async def test_a_domain_moves_to_another_primary_under_load_without_losing_or_doubling(
    cluster: ValkeyCluster, tmp_path: Path
) -> None:
    namespace = "mv" + uuid.uuid4().hex[:8]
    domain = domain_off_directory(cluster.slot_map(), namespace, prefix="move")
    slot = domain_slot(namespace, domain)
    source = cluster.primary_for_slot(slot)
    target = next(n for n in cluster.primary_nodes() if n.port != source.port)
    settings = Settings(redis_url=cluster.seed_url, redis_cluster=True, namespace=namespace)
    assert settings.redis_url is not None
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    create_tables(engine)
    load = Load()
    async with open_store(settings, settings.redis_url, pool_size=16) as store:
        client: Any = store.client
        assert isinstance(client, RedisCluster)
        for loc in LOCATIONS:
            await store.upsert_location(Location(loc, loc, "store", domain=domain))
        await asyncio.gather(*(store.set_count(s, loc, STOCK) for s in SKUS for loc in LOCATIONS))
        await asyncio.gather(
            *(store.set_count(f"FILL-{i}", LOCATIONS[0], 1) for i in range(FILLER_SKUS))
        )
        copy = LedgerCopy(store.outbox_of(domain), SqlLedger(engine), Metrics(), consumer="c1")

        tasks = [asyncio.create_task(reserver(store, load, w)) for w in range(RESERVERS)]
        tasks += [asyncio.create_task(adjuster(store, load, w)) for w in range(ADJUSTERS)]
        tasks.append(asyncio.create_task(copier(copy, load)))
        try:
            await load.until_acked(ACKED_BEFORE_MOVE)
            acks_at_move = load.acks
            moved = await move_domain(client, store, domain, target.name, batch=MIGRATE_BATCH)
            acks_during_move = load.acks - acks_at_move
            await load.until_acked(ACKED_AFTER_MOVE)
        finally:
            load.stop.set()
            done = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [r for r in done if isinstance(r, BaseException)]
        assert failures == [], failures

        # The move happened under the load, and the load went through it.
        assert (moved.source, moved.target) == (source.name, target.name)
        assert moved.keys > FILLER_SKUS
        assert load.retried["DomainMoving"] > 0, f"no call met the freeze: {load.retried}"
        assert cluster.primary_for_slot(slot).port == target.port
        assert source.command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0

        # Every reservation exactly once, with its lines; reserved = Σ holds.
        for rid, lines in load.reservations.items():
            reservation = await store.get_reservation(rid)
            assert reservation.state is State.HELD, rid
            assert reservation.lines == normalize_lines(lines), rid
        keys = store.keys_of(domain)
        assert set(await client.zrange(keys.active, 0, -1)) == set(load.reservations)
        held: Counter[tuple[str, str]] = Counter()
        for lines in load.reservations.values():
            for line in lines:
                held[line.sku, line.location_id] += line.qty
        # Every adjustment once in on_hand.
        adjusted: Counter[tuple[str, str]] = Counter()
        for sku, loc, delta in load.adjustments.values():
            adjusted[sku, loc] += delta
        for sku in SKUS:
            for position, _ in await store.positions(sku, LOCATIONS):
                at = (sku, position.location_id)
                assert position.reserved == held[at], (at, position)
                assert position.on_hand == STOCK + adjusted[at], (at, position)
        # A retry now is a replay, and changes nothing.
        event_id, (sku, loc, delta) = next(iter(load.adjustments.items()))
        again = await store.adjust(
            sku, loc, delta, reason="recount", source=SOURCE, source_event_id=event_id
        )
        assert again.replayed
        assert (await store.position(sku, loc)).on_hand == STOCK + adjusted[sku, loc]

        # New calls are applied on the target.
        after = await store.reserve("after-move", "web", [Line(SKUS[0], LOCATIONS[0], 1)], TTL)
        assert after.created
        assert target.command("EXISTS", keys.reservation("after-move")) == 1

        # The ledger copy, which read through the move, has every event once.
        while await copy.drain_once():
            pass
        ledger_reservations, movements = fetch_ledger(engine, keys.ledger_namespace)
        assert [e for e, n in Counter(mv.event_id for mv in movements).items() if n > 1] == []
        assert [k for k, n in Counter((mv.sku, mv.seq) for mv in movements).items() if n > 1] == []
        held_lines: dict[str, list[tuple[str, str, int]]] = {}
        for mv in movements:
            if mv.kind == "held":
                held_lines.setdefault(str(mv.reservation_id), []).append(
                    (mv.sku, mv.location_id, int(mv.qty))
                )
        expected_holds = {**load.reservations, "after-move": [Line(SKUS[0], LOCATIONS[0], 1)]}
        assert {rid: sorted(lines) for rid, lines in held_lines.items()} == {
            rid: sorted((ln.sku, ln.location_id, ln.qty) for ln in normalize_lines(lines))
            for rid, lines in expected_holds.items()
        }
        assert set(ledger_reservations) == set(expected_holds)
        rows = adjustment_rows(engine, keys.ledger_namespace)
        assert sorted(rows) == sorted((e, d) for e, (_, _, d) in load.adjustments.items())
    engine.dispose()
    print(  # the test's own figures, shown with -s
        f"moved {moved.keys} keys; {load.acks} operations acknowledged, {acks_during_move} "
        f"during the move; retried {dict(load.retried)}"
    )
