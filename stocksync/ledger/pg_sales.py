"""Sales into PostgreSQL on the event loop: one statement per group, one round trip.

A sale's commit used to run in a worker thread as a transaction of several round trips
(checkout, staging table, COPY, INSERT, COMMIT). Next to an API event loop that keeps the
interpreter busy, the thread waited for the GIL after every round trip, and a sale's commit
took 60-120 ms where it took 10-20 ms on an idle process. Here a group of sales is one
``INSERT ... SELECT ... FROM unnest(<one array per column>) ON CONFLICT (event_id) DO NOTHING``
sent on an autocommit connection the committer keeps open: a single statement is atomic (all of the
group's rows or none), it is one round trip, and no thread is involved.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection
from sqlalchemy.engine import Engine

from stocksync.ledger.rows import MOVEMENT_COLUMNS

IDLE_MAX = 2  # connections kept open: as many as the commits the committer runs at once
CONNECT_TIMEOUT_SECONDS = 3  # a sale waits at most this for a new connection, then 503

_TYPES = {
    "seq": "bigint",
    "qty": "integer",
    "d_on_hand": "integer",
    "d_reserved": "integer",
    "d_damaged": "integer",
    "d_quality_control": "integer",
    "d_in_transit": "integer",
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


class PostgresSales:
    """Writes sales' movement rows to PostgreSQL from the event loop.

    It keeps up to ``idle_max`` connections open between commits and opens one when none is
    idle. A connection that fails is closed, never reused; the next commit connects afresh at
    once. (A pool with background reconnection, psycopg_pool's, keeps backing off for seconds
    after an outage ends; a sale should learn at its own attempt whether the database is back.)
    """

    def __init__(self, engine: Engine, *, idle_max: int = IDLE_MAX) -> None:
        self._conninfo = conninfo(engine)
        self._idle: deque[AsyncConnection[Any]] = deque()
        self._idle_max = idle_max

    async def insert(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert ``rows`` (``MOVEMENT_COLUMNS`` order) in one statement; how many were new.

        Raises psycopg's errors. A kept connection that turns out broken (the server restarted
        since) is replaced once: the statement is idempotent, so sending it again is safe.
        """
        if not rows:
            return 0
        columns = [
            [None if v is None else str(v) for v in column] for column in zip(*rows, strict=True)
        ]
        reused = bool(self._idle)
        conn = self._idle.popleft() if reused else await self._connect()
        try:
            try:
                cursor = await conn.execute(_INSERT, columns)
            except psycopg.OperationalError:
                if not reused:
                    raise
                await conn.close()
                conn = await self._connect()
                cursor = await conn.execute(_INSERT, columns)
        except BaseException:
            await conn.close()
            raise
        if len(self._idle) < self._idle_max and not conn.broken:
            self._idle.append(conn)
        else:
            await conn.close()
        return cursor.rowcount

    async def _connect(self) -> AsyncConnection[Any]:
        return await AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )

    async def close(self) -> None:
        while self._idle:
            await self._idle.popleft().close()
