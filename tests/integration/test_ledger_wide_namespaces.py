"""Migration 0005: a stock domain's ledger namespace (``<ns>:<domain>``, up to 65 characters)
and its event ids fit the ledger, on SQLite and PostgreSQL, upgraded from the schema before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from stocksync.ledger.db import make_engine
from stocksync.ledger.migrate import upgrade
from tests.support.postgres import fresh_postgres_database

LONG_NS = "n" * 32 + ":" + "d" * 32  # the longest ledger namespace: 65 characters
LONG_EVENT = f"{LONG_NS}/18446744073709551615-18446744073709551615"  # 107


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A ledger at revision 0004 (before stock domains), on a database of its own."""
    if request.param == "postgresql":
        with fresh_postgres_database("stocksync_wide_") as url:
            engine = make_engine(url)
            upgrade(engine, "0004")
            yield engine
            engine.dispose()
    else:
        engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
        upgrade(engine, "0004")
        yield engine
        engine.dispose()


def insert_long_rows(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO stock_movements (event_id, namespace, kind, sku, location_id, seq,"
                " d_on_hand, d_reserved,"
                " occurred_at, recorded_at) VALUES (:e, :n, 'counted', 'S', 'L', 1, 0, 0, :t, :t)"
            ),
            {"e": LONG_EVENT, "n": LONG_NS, "t": now},
        )
        conn.execute(
            text(
                "INSERT INTO reservations (namespace, reservation_id, channel, state, lines,"
                " created_at, updated_at, at_risk) VALUES (:n, 'r', 'web', 'held', '[]', :t, :t,"
                " false)"
            ),
            {"n": LONG_NS, "t": now},
        )
        conn.execute(
            text(
                "INSERT INTO locations (namespace, location_id, name, kind, pickup, ship,"
                " updated_at) VALUES (:n, 'L', 'L', 'store', false, false, :t)"
            ),
            {"n": LONG_NS, "t": now},
        )


def test_domain_namespaces_fit_after_the_upgrade(old_schema: Engine) -> None:
    upgrade(old_schema)
    insert_long_rows(old_schema)
    with old_schema.connect() as conn:
        stored = conn.execute(
            text("SELECT event_id, namespace FROM stock_movements WHERE namespace = :n"),
            {"n": LONG_NS},
        ).one()
    assert tuple(stored) == (LONG_EVENT, LONG_NS)
    if old_schema.dialect.name == "postgresql":
        columns = {c["name"]: c["type"] for c in inspect(old_schema).get_columns("stock_movements")}
        assert (columns["namespace"].length, columns["event_id"].length) == (80, 120)
        for table in ("reservations", "customer_erasures", "reservation_transitions", "locations"):
            found = {c["name"]: c["type"] for c in inspect(old_schema).get_columns(table)}
            assert found["namespace"].length == 80, table


@pytest.mark.postgres
def test_postgres_refused_them_before_the_upgrade() -> None:
    """The migration is what makes them fit (the same rows fail at revision 0004)."""
    with fresh_postgres_database("stocksync_wide_") as url:
        engine = make_engine(url)
        try:
            upgrade(engine, "0004")
            with pytest.raises(Exception, match="too long"):
                insert_long_rows(engine)
        finally:
            engine.dispose()
