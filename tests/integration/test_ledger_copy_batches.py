"""The ledger copy's batch path (COPY into PostgreSQL, executemany into SQLite, the per-batch
fold) against real outbox events: re-delivery and reordering change nothing, and a batch that
fails half-way leaves nothing behind and is written exactly once by the retry."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, cast

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from stocksync.ledger.pg_copy import copy_rows
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.store.outbox import Entry
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import GROUP, LedgerCopy
from tests.support.ledger import TABLES, drive, dump, outbox_events, renamed, stream_fields
from tests.support.store import Stocked

# A trigger that fails the batch's transition rows while a flag row exists: a constraint the
# database enforces half-way through the batch, after its movements and reservations.
SQLITE_POISON = [
    "CREATE TABLE IF NOT EXISTS poison (action TEXT)",
    "CREATE TRIGGER IF NOT EXISTS poison BEFORE INSERT ON reservation_transitions"
    " WHEN EXISTS (SELECT 1 FROM poison) BEGIN SELECT RAISE(ABORT, 'poisoned batch'); END",
]
POSTGRES_POISON = [
    "CREATE TABLE IF NOT EXISTS poison (action TEXT)",
    "CREATE OR REPLACE FUNCTION poison() RETURNS trigger AS $$ BEGIN"
    " IF EXISTS (SELECT 1 FROM poison WHERE action = 'terminate') THEN"
    " PERFORM pg_terminate_backend(pg_backend_pid()); END IF;"
    " IF EXISTS (SELECT 1 FROM poison) THEN RAISE EXCEPTION 'poisoned batch'; END IF;"
    " RETURN NEW; END $$ LANGUAGE plpgsql",
    "CREATE OR REPLACE TRIGGER poison BEFORE INSERT ON reservation_transitions"
    " FOR EACH ROW EXECUTE FUNCTION poison()",
]


@pytest.fixture
def poison(engine: Engine) -> Iterator[Engine]:
    statements = POSTGRES_POISON if engine.dialect.name == "postgresql" else SQLITE_POISON
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    yield engine
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "DROP TRIGGER IF EXISTS poison"
            + (" ON reservation_transitions" if engine.dialect.name == "postgresql" else "")
        )
        conn.exec_driver_sql("DROP TABLE IF EXISTS poison")


def set_poison(engine: Engine, action: str | None) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM poison")
        if action is not None:
            conn.execute(text("INSERT INTO poison (action) VALUES (:a)"), {"a": action})


def rows_of(engine: Engine, namespace: str) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(
                conn.execute(
                    select(func.count()).select_from(table).where(table.c.namespace == namespace)
                ).scalar_one()
            )
            for name, table in TABLES.items()
        }


async def entries_of(store: RedisStockStore) -> list[Entry]:
    return cast("list[Entry]", await store.client.xrange(store.keys.outbox))


async def test_copy_path_reorder_and_redelivery_give_the_in_order_ledger(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    await drive(store, stocked, sku, sku + "-b")
    entries = await entries_of(store)
    ledger = SqlLedger(engine)
    assert ledger.record_entries({namespace: entries}) == sum(1 for _, f in entries if f["sku"])
    reference = dump(engine, namespace)
    rng = random.Random(20261128)
    for i in range(20):
        ns = f"{namespace}c{i}"
        mine = entries + rng.sample(entries, k=rng.randint(1, len(entries)))  # re-delivered
        rng.shuffle(mine)
        cuts = sorted(rng.sample(range(1, len(mine)), k=rng.randint(1, 10)))
        new_rows = 0
        for start, end in zip([0, *cuts], [*cuts, len(mine)], strict=True):
            new_rows += ledger.record_entries({ns: mine[start:end]})
        assert new_rows == len(reference["movements"]), f"permutation {i}"
        assert dump(engine, ns) == reference, f"permutation {i}"
    # Redelivered again whole: nothing new, nothing changed.
    assert ledger.record_entries({namespace: entries[::-1]}) == 0
    assert dump(engine, namespace) == reference


async def test_copy_path_matches_the_event_path(
    engine: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    """``record`` (decoded events, as the write-through hands them) and ``record_entries``
    (stream entries, as the ledger copy reads them) write the same ledger."""
    await drive(store, stocked, sku, sku + "-b")
    events = await outbox_events(store, namespace)
    ledger = SqlLedger(engine)
    ledger.record(events)
    ns = namespace + "e"
    ledger.record_entries({ns: [(e.stream_id, stream_fields(e)) for e in events]})
    assert dump(engine, ns) == dump(engine, namespace)


async def test_a_batch_failing_half_way_leaves_nothing_and_the_retry_writes_it_once(
    poison: Engine, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    engine = poison
    await drive(store, stocked, sku, sku + "-b")
    events = await outbox_events(store, namespace)  # before the drain trims them
    total = len(events)
    ledger = SqlLedger(engine)
    copy = LedgerCopy(store.outbox, ledger, Metrics(), consumer="w1", batch=5_000)
    actions = ["raise", "terminate"] if engine.dialect.name == "postgresql" else ["raise"]
    for action in actions:
        set_poison(engine, action)
        with pytest.raises(DBAPIError) as failed:
            await copy.drain_once()
        assert failed.value.connection_invalidated == (action == "terminate")
        assert rows_of(engine, namespace) == dict.fromkeys(TABLES, 0)
        pending = cast("dict[str, Any]", await store.client.xpending(store.keys.outbox, GROUP))
        assert pending["pending"] == total
    set_poison(engine, None)
    assert await copy.drain_once() == total
    pending = cast("dict[str, Any]", await store.client.xpending(store.keys.outbox, GROUP))
    assert pending["pending"] == 0
    # Exactly once, and the same ledger as one in-order pass of the same events.
    assert ledger.record(events) == 0
    ns = namespace + "r"
    ledger.record(renamed(events, ns))
    assert dump(engine, namespace) == dump(engine, ns)


@pytest.mark.postgres
async def test_a_value_too_long_fails_the_whole_copy_batch(
    postgres_url: str, store: RedisStockStore, stocked: Stocked, sku: str, namespace: str
) -> None:
    from stocksync.ledger.db import create_tables, make_engine

    engine = make_engine(postgres_url)
    create_tables(engine)
    try:
        await stocked(sku, 5)
        entries = await entries_of(store)
        bad = [*entries, ("9999999999999-0", {**entries[-1][1], "src": "s" * 33, "seq": "99"})]
        with pytest.raises(DBAPIError):
            SqlLedger(engine).record_entries({namespace: bad})
        assert rows_of(engine, namespace)["movements"] == 0
        assert SqlLedger(engine).record_entries({namespace: entries}) == len(entries) - 1
    finally:
        engine.dispose()


def copy_after_losing_the_connection(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TEMPORARY TABLE lost (x integer)")
        conn.connection.driver_connection.close()  # type: ignore[union-attr]
        copy_rows(conn, "COPY lost (x) FROM STDIN", [(1,), (2,)])


@pytest.mark.postgres
def test_copy_on_a_lost_connection_raises_and_invalidates_it(postgres_url: str) -> None:
    from stocksync.ledger.db import create_tables, make_engine

    engine = make_engine(postgres_url)
    create_tables(engine)
    try:
        with pytest.raises(DBAPIError) as failed:
            copy_after_losing_the_connection(engine)
        assert failed.value.connection_invalidated
        with engine.connect() as conn:  # the pool hands out a working connection again
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("action", ["raise", "terminate"])
async def test_a_failure_while_locking_reservations_leaves_nothing(
    postgres_url: str,
    store: RedisStockStore,
    stocked: Stocked,
    sku: str,
    namespace: str,
    action: str,
) -> None:
    """The reservations are seeded, locked and summarised in one pipelined round trip: a
    statement failing there (or the connection lost) fails the whole batch as any other."""
    from stocksync.ledger.db import create_tables, make_engine

    engine = make_engine(postgres_url)
    create_tables(engine)
    poisoned = [s.replace("reservation_transitions", "reservations") for s in POSTGRES_POISON]
    try:
        with engine.begin() as conn:
            for statement in poisoned:
                conn.exec_driver_sql(statement)
        set_poison(engine, action)
        await drive(store, stocked, sku, sku + "-b")
        entries = await entries_of(store)
        ledger = SqlLedger(engine)
        with pytest.raises(DBAPIError) as failed:
            ledger.record_entries({namespace: entries})
        assert failed.value.connection_invalidated == (action == "terminate")
        assert rows_of(engine, namespace) == dict.fromkeys(TABLES, 0)
        set_poison(engine, None)
        assert ledger.record_entries({namespace: entries}) == sum(1 for _, f in entries if f["sku"])
        ns = namespace + "r"
        ledger.record_entries({ns: entries})
        assert dump(engine, namespace) == dump(engine, ns)
    finally:
        engine.dispose()
