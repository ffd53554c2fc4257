"""Migration 0007 and the writers: the bucket deltas' columns on SQLite and PostgreSQL, the
position index covering them on PostgreSQL, the models agreeing with the migrations, and every
writer (the batch paths, the sales' path) putting bucket events into them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.migrate import downgrade, upgrade
from stocksync.ledger.pg_sales import PostgresSales
from stocksync.ledger.sql_ledger import MOVEMENTS, SqlLedger
from stocksync.store.outbox import decode_event
from tests.support.postgres import fresh_postgres_database
from tests.support.shelf_ledger import ShelfStory, record

BUCKET_DELTAS = ["d_damaged", "d_quality_control", "d_in_transit"]
DELTAS = ["d_on_hand", "d_reserved", *BUCKET_DELTAS]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def blank(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of its own (no schema yet)."""
    if request.param == "postgresql":
        with fresh_postgres_database("stocksync_buckets_") as url:
            engine = make_engine(url)
            yield engine
            engine.dispose()
    else:
        engine = make_engine(f"sqlite:///{tmp_path / 'buckets.db'}")
        yield engine
        engine.dispose()


def columns(engine: Engine) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in inspect(engine).get_columns("stock_movements")}


def position_index(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_movements_position'")
            ).scalar_one()
        )


def insert_old_row(engine: Engine) -> None:
    """A movement as revision 0006 writes it (no bucket columns)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stock_movements (event_id, namespace, kind, sku, location_id, seq,"
                " d_on_hand, d_reserved, occurred_at, recorded_at)"
                " VALUES ('old/1-0', 'old', 'counted', 'S', 'L', 1, 4, 0, :t, :t)"
            ),
            {"t": now},
        )


def test_migration_0007_adds_the_bucket_deltas_and_goes_back(blank: Engine) -> None:
    upgrade(blank, "0006")
    insert_old_row(blank)
    assert not set(BUCKET_DELTAS) & set(columns(blank))

    upgrade(blank)
    found = columns(blank)
    for name in BUCKET_DELTAS:
        assert not found[name]["nullable"], name
        assert "0" in str(found[name]["default"]), name
    with blank.connect() as conn:
        old = conn.execute(select(*(MOVEMENTS.c[c] for c in DELTAS))).one()
    assert tuple(old) == (4, 0, 0, 0, 0)  # rows written before have no bucket delta
    if blank.dialect.name == "postgresql":
        assert "INCLUDE (d_on_hand, d_reserved, d_damaged, d_quality_control, d_in_transit)" in (
            position_index(blank)
        )

    downgrade(blank, "0006")
    assert not set(BUCKET_DELTAS) & set(columns(blank))
    with blank.connect() as conn:
        kept = conn.execute(text("SELECT event_id, d_on_hand FROM stock_movements")).all()
    assert [tuple(r) for r in kept] == [("old/1-0", 4)]
    if blank.dialect.name == "postgresql":
        assert position_index(blank).endswith("INCLUDE (d_on_hand, d_reserved)")
    upgrade(blank)  # and up again
    assert set(BUCKET_DELTAS) <= set(columns(blank))


@pytest.mark.postgres
def test_migration_0007_keeps_an_index_built_by_hand() -> None:
    """The documented way to avoid the index rebuild's write lock: columns and index first."""
    with fresh_postgres_database("stocksync_buckets_") as url:
        engine = make_engine(url)
        try:
            upgrade(engine, "0006")
            with engine.begin() as conn:
                for name in BUCKET_DELTAS:
                    conn.exec_driver_sql(
                        f"ALTER TABLE stock_movements ADD COLUMN {name} integer NOT NULL DEFAULT 0"
                    )
                conn.exec_driver_sql(
                    "CREATE INDEX ix_movements_position_v3 ON stock_movements (namespace, sku,"
                    " location_id, seq) INCLUDE (d_on_hand, d_reserved, d_damaged,"
                    " d_quality_control, d_in_transit)"
                )
                conn.exec_driver_sql("DROP INDEX ix_movements_position")
                conn.exec_driver_sql(
                    "ALTER INDEX ix_movements_position_v3 RENAME TO ix_movements_position"
                )
                oid = conn.exec_driver_sql(
                    "SELECT 'ix_movements_position'::regclass::oid"
                ).scalar_one()
            upgrade(engine)
            with engine.connect() as conn:
                after = conn.exec_driver_sql(
                    "SELECT 'ix_movements_position'::regclass::oid"
                ).scalar_one()
            assert after == oid  # not rebuilt
        finally:
            engine.dispose()


def test_the_models_and_the_migrations_agree(blank: Engine) -> None:
    """create_tables runs the migrations: what they build must be what the models declare."""
    upgrade(blank)
    # SQLite ignores VARCHAR lengths (0005 widened them on PostgreSQL only): types are
    # compared where the database keeps them.
    postgres = blank.dialect.name == "postgresql"
    with blank.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": postgres})
        assert compare_metadata(context, SQLModel.metadata) == []
    found = columns(blank)
    for name in DELTAS:
        assert (found[name]["nullable"], MOVEMENTS.c[name].nullable) == (False, False), name
    for name in BUCKET_DELTAS:  # server defaults are not compared by alembic: by hand
        assert MOVEMENTS.c[name].server_default is not None, name
        assert "0" in str(found[name]["default"]), name
    if postgres:  # nor INCLUDE columns
        index = next(i for i in MOVEMENTS.indexes if i.name == "ix_movements_position")
        included = ", ".join(index.dialect_options["postgresql"]["include"])
        assert position_index(blank).endswith(f"INCLUDE ({included})")


def story() -> ShelfStory:
    s = ShelfStory("SKU-B")
    s.count("store-a", 10)
    s.bucket("stock_moved", "store-a", 2, {"on_hand": -2, "damaged": 2}, to="damaged")
    s.bucket("returned", "store-a", 1, {"quality_control": 1}, ret="r-1", disp="inspect")
    s.bucket("transfer_shipped", "store-b", 3, {"in_transit": 3}, xfer="t-1", to="store-b")
    s.bucket("transfer_received", "store-b", 2, {"in_transit": -3, "on_hand": 2}, xfer="t-1")
    return s


EXPECTED = [  # (kind, location, each delta in DELTAS order)
    ("counted", "store-a", (10, 0, 0, 0, 0)),
    ("stock_moved", "store-a", (-2, 0, 2, 0, 0)),
    ("returned", "store-a", (0, 0, 0, 1, 0)),
    ("transfer_shipped", "store-b", (0, 0, 0, 0, 3)),
    ("transfer_received", "store-b", (2, 0, 0, 0, -3)),
]


def stored(engine: Engine, namespace: str) -> list[tuple[str, str, tuple[int, ...]]]:
    m = MOVEMENTS
    with engine.connect() as conn:
        rows = conn.execute(
            select(m.c.kind, m.c.location_id, *(m.c[c] for c in DELTAS))
            .where(m.c.namespace == namespace)
            .order_by(m.c.seq)
        ).all()
    return [(kind, loc, tuple(deltas)) for kind, loc, *deltas in rows]


def test_bucket_events_round_trip_through_the_batch_path(engine: Engine) -> None:
    """COPY on PostgreSQL, executemany on SQLite (the engine fixture runs both)."""
    ledger, told = SqlLedger(engine), story()
    assert record(ledger, "rt-batch", told) == len(EXPECTED)
    assert record(ledger, "rt-batch", told) == 0  # re-delivered: written once
    assert stored(engine, "rt-batch") == EXPECTED


def test_bucket_events_round_trip_through_record_movements(engine: Engine) -> None:
    """The write-through's path (OutboxEvent values)."""
    events = [decode_event("rt-events", sid, f) for sid, f in story().entries]
    assert SqlLedger(engine).record_movements(events) == len(EXPECTED)
    assert stored(engine, "rt-events") == EXPECTED


@pytest.mark.postgres
async def test_bucket_events_round_trip_through_the_sales_statement(postgres_url: str) -> None:
    """PostgreSQL's sales path (one INSERT ... unnest of text arrays) casts the new columns
    (SQLite's sales go through record_movements, above)."""
    engine = make_engine(postgres_url)
    create_tables(engine)
    sales = PostgresSales(engine)
    try:
        events = [decode_event("rt-sales", sid, f) for sid, f in story().entries]
        assert await sales.insert(SqlLedger(engine).movement_rows(events)) == len(EXPECTED)
        assert stored(engine, "rt-sales") == EXPECTED
    finally:
        await sales.close()
        engine.dispose()
