"""The ledger's batch statements on PostgreSQL: ``COPY`` into a staging table, set-based SQL.

A batch's movements are streamed with ``COPY`` (psycopg 3) into a temporary staging table of
this session (``ON COMMIT DELETE ROWS``: emptied by the commit that writes them), then moved in
one ``INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING``: a re-delivered event is
skipped, and as everything runs in the caller's transaction, a batch that fails half-way
(a constraint, a lost connection) leaves nothing behind. The reservation rows and transitions
are written with one statement each over arrays (``unnest``), not one statement per row, and
the rows are seeded, locked and summarised in one pipelined round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from stocksync.domain.clock import EPOCH, ms_to_datetime
from stocksync.domain.events import RESERVATION_KINDS, EventKind
from stocksync.ledger.batch_fold import RESERVATION_COLUMNS, Locked
from stocksync.ledger.rows import MOVEMENT_COLUMNS, postgres_time
from stocksync.ledger.tables import utcnow

STAGING = "stocksync_movements_in"
_COLUMNS = ", ".join(MOVEMENT_COLUMNS)
_TYPES = {"seq": "bigint", "occurred_at": "timestamptz", "recorded_at": "timestamptz"}
_INTEGERS = {"qty", "on_hand", "reserved", *(c for c in MOVEMENT_COLUMNS if c.startswith("d_"))}
# Unbounded text: a value too long for stock_movements fails the INSERT, inside the batch.
_CREATE_STAGING = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING} ("
    + ", ".join(
        f"{c} {_TYPES.get(c, 'integer' if c in _INTEGERS else 'text')}" for c in MOVEMENT_COLUMNS
    )
    + ") ON COMMIT DELETE ROWS"
)
_COPY = f"COPY {STAGING} ({_COLUMNS}) FROM STDIN"
_MOVE = (
    f"INSERT INTO stock_movements ({_COLUMNS}) SELECT {_COLUMNS} FROM {STAGING}"
    " ON CONFLICT (event_id) DO NOTHING"
)
_SEED = (
    "INSERT INTO reservations (namespace, reservation_id, channel, state, lines, customer_ref,"
    " created_at, updated_at, expires_at, at_risk)"
    " SELECT %s, id, '', 'held', '[]', NULL, %s, %s, NULL, false"
    " FROM unnest(%b::text[]) AS id ORDER BY id ON CONFLICT DO NOTHING"
)
# Grouped here rather than in SQL: PostgreSQL's estimate for ANY(array) is one row, and the
# sort by the collated text columns it then picks cost more than the rows do.
_RECORDED = (
    "SELECT reservation_id, sku, kind, seq FROM stock_movements"
    " WHERE namespace = %s AND reservation_id = ANY(%b) AND kind = ANY(%b)"
)
_UPDATE = (
    "UPDATE reservations AS r SET channel = v.channel, state = v.state, lines = v.lines,"
    " customer_ref = v.customer_ref, created_at = v.created_at, updated_at = v.updated_at,"
    " expires_at = v.expires_at, at_risk = v.at_risk"
    " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],"
    " %b::timestamptz[], %b::timestamptz[], %b::timestamptz[], %b::boolean[])"
    " AS v(reservation_id, channel, state, lines, customer_ref, created_at, updated_at,"
    " expires_at, at_risk)"
    " WHERE r.namespace = %s AND r.reservation_id = v.reservation_id"
)
_TRANSITIONS = (
    "INSERT INTO reservation_transitions (namespace, reservation_id, state, at)"
    " SELECT %s, v.r, v.s, v.a FROM unnest(%b::text[], %b::text[], %b::timestamptz[])"
    " AS v(r, s, a) ON CONFLICT (namespace, reservation_id, state, at) DO NOTHING"
)
_LOCK = (
    f"SELECT {', '.join(RESERVATION_COLUMNS)} FROM reservations"
    " WHERE namespace = %s AND reservation_id = ANY(%b::text[])"
    " ORDER BY reservation_id FOR UPDATE"
)
# The lock, the events' summary and the update find a batch's reservations by (namespace,
# reservation_id). Left to the planner, a few thousand ids against a table it has no fresh
# statistics for (a ledger filling fast, between two autovacuum analyzes) got scans of the
# namespace's every row, whose cost grows with the table: the copy fell behind a 60 s reserve
# load at saturation, its lag growing to 24 s of traffic. Index lookups cost the same at any
# size (at 100k rows, 2,000 ids: 5.6 and 6.5 ms against 14.5 and 13.1 ms scanning), so those
# statements, and only they, run with scans switched off (over a whole batch the setting made
# other statements, the staging table's INSERT ... SELECT, several times slower).
_BY_INDEX = "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"
_BY_ANY_PLAN = "SET LOCAL enable_seqscan = on; SET LOCAL enable_bitmapscan = on"
_KINDS = sorted(k.value for k in RESERVATION_KINDS)
_AT_RISK = EventKind.AT_RISK.value


@contextmanager
def driver_errors(conn: Connection, sql: str) -> Iterator[None]:
    """Statements run on the connection's psycopg connection itself (COPY, a pipeline) fail
    as through SQLAlchemy: a driver error is raised as SQLAlchemy's, and a lost connection is
    invalidated so the pool does not hand it out again."""
    dialect = conn.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sql,
            None,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc


def copy_rows(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``COPY ... FROM STDIN`` of ``rows`` on the connection's psycopg connection, inside its
    transaction."""
    driver = conn.connection.driver_connection
    with driver_errors(conn, sql), driver.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


class PostgresCopy:
    """Batch writes and the fold's summary on a PostgreSQL (psycopg 3) connection."""

    time_format = staticmethod(postgres_time)

    @staticmethod
    def recorded_at() -> Any:
        return utcnow()

    @staticmethod
    def begin(conn: Connection) -> None:
        """At the start of a batch's transaction: nothing to set (see ``_BY_INDEX``)."""

    @staticmethod
    def insert_movements(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """COPY the movements in, keep the ones not yet recorded; returns how many were new."""
        if not rows:
            return 0
        conn.exec_driver_sql(_CREATE_STAGING)
        copy_rows(conn, _COPY, rows)
        # Once per transaction: the staging rows stay until the commit empties the table.
        return int(conn.exec_driver_sql(_MOVE).rowcount)

    @staticmethod
    def chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
        """Reservations locked together: all of a batch's (arrays have no length limit)."""
        if ids:
            yield ids

    @staticmethod
    def lock_reservations(
        conn: Connection,
        namespace: str,
        ids: Sequence[str],
        speculate: Callable[[], Mapping[str, dict[str, Any]]],
    ) -> Locked:
        """Seed a placeholder row for each reservation that has none, lock the rows (in one
        order) and read the ledger's summary of their events, in one round trip (a
        pipeline); ``speculate`` runs while the database works."""
        driver = conn.connection.driver_connection
        keys = list(ids)
        with (
            driver_errors(conn, _LOCK),
            driver.pipeline(),  # type: ignore[union-attr]
            driver.cursor() as seed,  # type: ignore[union-attr]
            driver.cursor() as lock,  # type: ignore[union-attr]
            driver.cursor() as summary,  # type: ignore[union-attr]
        ):
            seed.execute(_SEED, (namespace, EPOCH, EPOCH, keys))
            for setting in _BY_INDEX.split("; "):  # one statement each in a pipeline
                seed.execute(setting)
            lock.execute(_LOCK, (namespace, keys))
            summary.execute(_RECORDED, (namespace, keys, _KINDS))
            for setting in _BY_ANY_PLAN.split("; "):
                seed.execute(setting)
            speculated = speculate()
            rows = {row[0]: row for row in lock.fetchall()}
            found = summary.fetchall()
        recorded: dict[str, dict[str, tuple[int, int | None]]] = {}
        for res, sku, kind, seq in found:
            skus = recorded.setdefault(res, {})
            count, top = skus.get(sku, (0, None))
            if kind != _AT_RISK and (top is None or seq > top):
                top = seq
            skus[sku] = (count + 1, top)

        def current(reservation_id: str) -> dict[str, Any]:
            return dict(zip(RESERVATION_COLUMNS, rows[reservation_id], strict=True))

        return Locked(recorded, speculated, current)

    @staticmethod
    def update_reservations(
        conn: Connection, namespace: str, changes: Sequence[tuple[str, dict[str, Any]]]
    ) -> None:
        if not changes:
            return
        columns = ("channel", "state", "lines", "customer_ref", "created_at", "updated_at")
        arrays = [[reservation_id for reservation_id, _ in changes]]
        arrays += [[new[c] for _, new in changes] for c in (*columns, "expires_at", "at_risk")]
        conn.exec_driver_sql(_BY_INDEX)
        conn.exec_driver_sql(_UPDATE, (*arrays, namespace))
        conn.exec_driver_sql(_BY_ANY_PLAN)

    @staticmethod
    def insert_transitions(
        conn: Connection, namespace: str, rows: Sequence[tuple[str, str, int]]
    ) -> None:
        if rows:
            ids, states, times = zip(*rows, strict=True)
            at = [ms_to_datetime(ms) for ms in times]
            conn.exec_driver_sql(_TRANSITIONS, (namespace, list(ids), list(states), at))
