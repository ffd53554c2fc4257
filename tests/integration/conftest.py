"""SQL databases for integration tests: SQLite always, PostgreSQL when it is reachable."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from stocksync.ledger.db import create_tables, make_engine
from tests.support.postgres import fresh_postgres_database
from tests.support.processes import Processes, Stack, running_stack


def postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of its own for this test session on the local PostgreSQL, dropped after."""
    if not postgres_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    with fresh_postgres_database("stocksync_test_") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    eng = make_engine(url)
    create_tables(eng)
    yield eng
    eng.dispose()


# The crash tests' stack (test_crash.py, test_crash_shelf.py): every scenario runs against a
# SQLite and a PostgreSQL ledger.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    with fresh_postgres_database("stocksync_crash_") as url:
        yield url


@pytest.fixture
async def stack(
    tmp_path: Path, processes: Processes, ledger_database_url: str
) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, processes, ledger_database_url) as running:
        yield running
