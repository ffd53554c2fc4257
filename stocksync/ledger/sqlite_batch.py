"""The ledger's batch statements on SQLite: prepared ``executemany`` of plain tuples.

SQLite runs in-process, so one statement per row costs little once nothing else is per row:
the rows are tuples (no SQLAlchemy compilation or type processing per row), written inside
the caller's transaction (one per batch), and the driver's errors arrive wrapped by
SQLAlchemy, as for any other statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from stocksync.domain.clock import EPOCH
from stocksync.domain.events import RESERVATION_KINDS
from stocksync.ledger.batch_fold import Recorded
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
_EPOCH_TEXT = sqlite_datetime(EPOCH)


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
    def insert_movements(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert the movements not yet recorded; returns how many were new."""
        if not rows:
            return 0
        return int(conn.exec_driver_sql(_INSERT_MOVEMENTS, list(rows)).rowcount)

    @staticmethod
    def seed_reservations(conn: Connection, namespace: str, ids: Sequence[str]) -> None:
        """A placeholder row for each reservation that has none yet."""
        conn.exec_driver_sql(_SEED, [(namespace, i, _EPOCH_TEXT, _EPOCH_TEXT) for i in ids])

    @staticmethod
    def recorded(conn: Connection, namespace: str, ids: Sequence[str]) -> Mapping[str, Recorded]:
        """Per reservation and SKU: its events the ledger holds, the highest non-flag seq."""
        out: dict[str, dict[str, tuple[int, int | None]]] = {}
        for chunk in _chunks(ids):
            sql = (
                "SELECT reservation_id, sku, count(*),"
                " max(CASE WHEN kind <> 'at_risk' THEN seq END) FROM stock_movements"
                f" WHERE namespace = ? AND reservation_id IN ({', '.join('?' * len(chunk))})"
                f" AND kind IN ({', '.join('?' * len(_KINDS))}) GROUP BY reservation_id, sku"
            )
            for res, sku, count, top in conn.exec_driver_sql(sql, (namespace, *chunk, *_KINDS)):
                out.setdefault(res, {})[sku] = (int(count), None if top is None else int(top))
        return out

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
