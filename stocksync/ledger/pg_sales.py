"""Sales into PostgreSQL on the event loop: one statement per group, one round trip.

A sale's commit used to run in a worker thread as a transaction of several round trips
(checkout, staging table, COPY, INSERT, COMMIT). Next to an API event loop that keeps the
interpreter busy, the thread waited for the GIL after every round trip, and a sale's commit
took 60-120 ms where it took 10-20 ms on an idle process. Here a group of sales is one
``INSERT ... SELECT ... FROM unnest(<one array per column>) ON CONFLICT (event_id) DO NOTHING``
sent on an autocommit connection of an asyncio pool: a single statement is atomic (all of the
group's rows or none), it is one round trip, and no thread is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.engine import Engine

from stocksync.ledger.rows import MOVEMENT_COLUMNS

POOL_MAX = 2  # connections: as many as the commits the committer runs at once
CONNECT_TIMEOUT_SECONDS = 3.0  # a sale waits at most this for a connection, then 503

_TYPES = {
    "seq": "bigint",
    "qty": "integer",
    "d_on_hand": "integer",
    "d_reserved": "integer",
    "on_hand": "integer",
    "reserved": "integer",
    "occurred_at": "timestamptz",
    "recorded_at": "timestamptz",
}
_COLUMNS = ", ".join(MOVEMENT_COLUMNS)
# Every column arrives as text (psycopg sends text[] for a list of str); the casts give types.
_INSERT = (
    f"INSERT INTO stock_movements ({_COLUMNS}) SELECT "
    + ", ".join(f"v.{c}::{_TYPES[c]}" if c in _TYPES else f"v.{c}" for c in MOVEMENT_COLUMNS)
    + " FROM unnest("
    + ", ".join("%s::text[]" for _ in MOVEMENT_COLUMNS)
    + f") AS v({_COLUMNS}) ON CONFLICT (event_id) DO NOTHING"
)


def conninfo(engine: Engine) -> str:
    """The libpq URI of a ``postgresql+psycopg`` engine's database."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _autocommit(conn: AsyncConnection[Any]) -> None:
    await conn.set_autocommit(True)


class PostgresSales:
    """Writes sales' movement rows to PostgreSQL from the event loop."""

    def __init__(self, engine: Engine, *, pool_max: int = POOL_MAX) -> None:
        self._pool = AsyncConnectionPool(
            conninfo(engine),
            min_size=1,
            max_size=pool_max,
            open=False,
            configure=_autocommit,
            timeout=CONNECT_TIMEOUT_SECONDS,
            name="stocksync-sales",
        )
        self._opened = False

    async def insert(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert ``rows`` (``MOVEMENT_COLUMNS`` order) in one statement; how many were new.

        Raises psycopg's errors (``psycopg_pool.PoolTimeout`` when no connection could be had).
        """
        if not rows:
            return 0
        if not self._opened:
            await self._pool.open(wait=False)
            self._opened = True
        columns = [
            [None if v is None else str(v) for v in column] for column in zip(*rows, strict=True)
        ]
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_INSERT, columns)
            return cursor.rowcount

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False
