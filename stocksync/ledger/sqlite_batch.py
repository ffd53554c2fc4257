"""The ledger's batch statements on SQLite: prepared ``executemany`` of plain tuples.

SQLite runs in-process, so one statement per row costs little once nothing else is per row:
the rows are tuples (no SQLAlchemy compilation or type processing per row), written inside
the caller's transaction (one per batch), and the driver's errors arrive wrapped by
SQLAlchemy, as for any other statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from stocksync.domain.clock import EPOCH
from stocksync.domain.events import RESERVATION_KINDS
from stocksync.ledger.batch_fold import RESERVATION_COLUMNS, Locked
from stocksync.ledger.rows import MOVEMENT_COLUMNS, sqlite_datetime, sqlite_time
from stocksync.ledger.tables import utcnow

CHUNK = 500  # reservations per IN (...) list

_INSERT_MOVEMENTS = (
    f"INSERT INTO stock_movements ({', '.join(MOVEMENT_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in MOVEMENT_COLUMNS)})"
    " ON CONFLICT (event_id) DO NOTHING"
)
_SEED = (
    "INSERT INTO reservations (namespace, reservation_id, channel, state, lines, customer_ref,"
    " created_at, updated_at, expires_at, at_risk)"
    " VALUES (?, ?, '', 'held', '[]', NULL, ?, ?, NULL, 0) ON CONFLICT DO NOTHING"
)
_UPDATE = (
    "UPDATE reservations SET channel = ?, state = ?, lines = ?, customer_ref = ?,"
    " created_at = ?, updated_at = ?, expires_at = ?, at_risk = ?"
    " WHERE namespace = ? AND reservation_id = ?"
)
_TRANSITIONS = (
    "INSERT INTO reservation_transitions (namespace, reservation_id, state, at)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (namespace, reservation_id, state, at) DO NOTHING"
)
_KINDS = sorted(k.value for k in RESERVATION_KINDS)
_KIND_MARKS = ", ".join("?" * len(_KINDS))
_RECORDED = (
    "SELECT reservation_id, sku, count(*),"
    " max(CASE WHEN kind <> 'at_risk' THEN seq END) FROM stock_movements"
    " WHERE namespace = ? AND reservation_id IN ({ids}) AND kind IN ({kinds})"
    " GROUP BY reservation_id, sku"
)
_ROWS = (
    f"SELECT {', '.join(RESERVATION_COLUMNS)} FROM reservations"
    " WHERE namespace = ? AND reservation_id IN ({ids})"
)
_EPOCH_TEXT = sqlite_datetime(EPOCH)


def _moment(text: str | None) -> datetime | None:
    """A datetime column as SQLite returns it (SQLAlchemy's text form, UTC) as a datetime."""
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def _chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


class SqliteBatch:
    """Batch writes and the fold's summary on a SQLite connection."""

    time_format = staticmethod(sqlite_time)

    @staticmethod
    def recorded_at() -> Any:
        return sqlite_datetime(utcnow())

    @staticmethod
    def begin(conn: Connection) -> None:
        """At the start of a batch's transaction: nothing to set on SQLite."""

    @staticmethod
    def insert_movements(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert the movements not yet recorded; returns how many were new."""
        if not rows:
            return 0
        return int(conn.exec_driver_sql(_INSERT_MOVEMENTS, list(rows)).rowcount)

    @staticmethod
    def chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
        """Reservations locked together: up to CHUNK (the length of an IN (...) list)."""
        return _chunks(ids)

    @staticmethod
    def lock_reservations(
        conn: Connection,
        namespace: str,
        ids: Sequence[str],
        speculate: Callable[[], Mapping[str, dict[str, Any]]],
    ) -> Locked:
        """Seed a placeholder row for each reservation that has none, read the ledger's
        summary of their events and their rows (the transaction already holds SQLite's write
        lock: the movements went first)."""
        conn.exec_driver_sql(_SEED, [(namespace, i, _EPOCH_TEXT, _EPOCH_TEXT) for i in ids])
        marks = ", ".join("?" * len(ids))
        recorded: dict[str, dict[str, tuple[int, int | None]]] = {}
        sql = _RECORDED.format(ids=marks, kinds=_KIND_MARKS)
        for res, sku, count, top in conn.exec_driver_sql(sql, (namespace, *ids, *_KINDS)):
            recorded.setdefault(res, {})[sku] = (int(count), None if top is None else int(top))
        rows = {
            row[0]: row for row in conn.exec_driver_sql(_ROWS.format(ids=marks), (namespace, *ids))
        }

        def current(reservation_id: str) -> dict[str, Any]:
            row = dict(zip(RESERVATION_COLUMNS, rows[reservation_id], strict=True))
            for column in ("created_at", "updated_at", "expires_at"):
                row[column] = _moment(row[column])
            row["at_risk"] = bool(row["at_risk"])
            return row

        return Locked(recorded, speculate(), current)

    @staticmethod
    def update_reservations(
        conn: Connection, namespace: str, changes: Sequence[tuple[str, dict[str, Any]]]
    ) -> None:
        if not changes:
            return
        conn.exec_driver_sql(
            _UPDATE,
            [
                (
                    new["channel"],
                    new["state"],
                    new["lines"],
                    new["customer_ref"],
                    sqlite_datetime(new["created_at"]),
                    sqlite_datetime(new["updated_at"]),
                    sqlite_datetime(new["expires_at"]),
                    1 if new["at_risk"] else 0,
                    namespace,
                    reservation_id,
                )
                for reservation_id, new in changes
            ],
        )

    @staticmethod
    def insert_transitions(
        conn: Connection, namespace: str, rows: Sequence[tuple[str, str, int]]
    ) -> None:
        if rows:
            values = [(namespace, res, state, sqlite_time(at)) for res, state, at in rows]
            conn.exec_driver_sql(_TRANSITIONS, values)
