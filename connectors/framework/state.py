"""What a connector keeps in the ledger database: checkpoints, dead letters, processed files.

Plain synchronous SQL (callers run it in a worker thread); every write commits on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from stocksync.ledger.tables import ConnectorCheckpoint, ConnectorDeadLetter, ConnectorFile

MAX_PAYLOAD_CHARS = 1_000_000  # a dead letter keeps the payload whole up to this size


class ConnectorState:
    """One connector's rows, by its name."""

    def __init__(self, engine: Engine, connector: str) -> None:
        self.engine = engine
        self.connector = connector

    # -- checkpoint: where polling or consuming resumes -----------------------------------

    def checkpoint(self) -> str | None:
        with Session(self.engine) as session:
            row = session.get(ConnectorCheckpoint, self.connector)
            return None if row is None else row.cursor

    def save_checkpoint(self, cursor: str) -> None:
        with Session(self.engine) as session:
            row = session.get(ConnectorCheckpoint, self.connector)
            if row is None:
                row = ConnectorCheckpoint(connector=self.connector, cursor=cursor)
            row.cursor = cursor
            row.updated_at = datetime.now(UTC)
            session.add(row)
            session.commit()

    # -- dead letters: what could not be mapped or applied, with why ----------------------

    def dead_letter(self, kind: str, reason: str, payload: str) -> int:
        """Record a payload the connector gave up on; returns the row id."""
        row = ConnectorDeadLetter(
            connector=self.connector,
            kind=kind[:100],
            reason=reason,
            payload=payload[:MAX_PAYLOAD_CHARS],
        )
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            assert row.id is not None
            return row.id

    def dead_letters(self, limit: int = 100) -> list[ConnectorDeadLetter]:
        """The newest dead letters first."""
        with Session(self.engine) as session:
            query = (
                select(ConnectorDeadLetter)
                .where(ConnectorDeadLetter.connector == self.connector)
                .order_by(col(ConnectorDeadLetter.id).desc())
                .limit(limit)
            )
            return list(session.exec(query))

    # -- processed files: each file's content is applied once -----------------------------

    def processed(self, content_hash: str) -> ConnectorFile | None:
        with Session(self.engine) as session:
            return session.get(ConnectorFile, (self.connector, content_hash))

    def mark_processed(self, content_hash: str, name: str, summary: Mapping[str, int]) -> None:
        row = ConnectorFile(
            connector=self.connector,
            content_hash=content_hash,
            name=name[:500],
            summary=json.dumps(dict(summary), sort_keys=True),
        )
        with Session(self.engine) as session:
            session.merge(row)
            session.commit()
