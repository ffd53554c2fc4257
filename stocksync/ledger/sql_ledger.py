"""SqlLedger: the SQL ledger, written from outbox events idempotently and read back.

Every SKU event becomes one ``stock_movements`` row keyed by its event id
(``namespace/stream-id``), so a re-delivered event is written once. Reservation events are folded
into ``reservations`` (see :mod:`stocksync.ledger.fold`: the result does not depend on the order
or the batches the events arrive in) and ``reservation_transitions``; location events upsert
``locations``. One call to :meth:`SqlLedger.record` is one transaction, written by the
database's batch path (:mod:`.pg_copy`: COPY into PostgreSQL; :mod:`.sqlite_batch`: prepared
executemany into SQLite) from rows built without per-event objects (:mod:`.rows`), and folded
per batch (:mod:`.batch_fold`). The ledger copy
(:mod:`stocksync.workers.ledger_copy`) and the sale write-through feed it; the regression
check, rebuild and audit read it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Select, Table, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from stocksync.domain.events import RESERVATION_KINDS, EventKind
from stocksync.domain.model import customer_ref_hash
from stocksync.ledger import batch_fold, fold
from stocksync.ledger.fold import ReservationEvent
from stocksync.ledger.pg_copy import PostgresCopy
from stocksync.ledger.rows import NamespaceRows, build, entries_of
from stocksync.ledger.sqlite_batch import SqliteBatch
from stocksync.ledger.tables import (
    CustomerErasure,
    LedgerLocation,
    LedgerReservation,
    Movement,
    ReservationTransition,
    utcnow,
)
from stocksync.store.outbox import Entry, OutboxEvent

MOVEMENTS = cast(Table, Movement.__table__)  # type: ignore[attr-defined]
RESERVATIONS = cast(Table, LedgerReservation.__table__)  # type: ignore[attr-defined]
TRANSITIONS = cast(Table, ReservationTransition.__table__)  # type: ignore[attr-defined]
LOCATIONS = cast(Table, LedgerLocation.__table__)  # type: ignore[attr-defined]
ERASURES = cast(Table, CustomerErasure.__table__)  # type: ignore[attr-defined]


class SqlLedger:
    """Writes outbox events to the SQL ledger and answers what the ledger has seen."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database dialect {engine.dialect.name!r}")
        self._batch: PostgresCopy | SqliteBatch = (
            PostgresCopy() if engine.dialect.name == "postgresql" else SqliteBatch()
        )

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        # Both dialect inserts support ON CONFLICT ... DO NOTHING / DO UPDATE ... WHERE.
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def record(self, events: Sequence[OutboxEvent]) -> int:
        """Write ``events`` in one transaction; returns how many movements were new."""
        return self.record_entries(entries_of(events))

    def record_entries(self, entries: Mapping[str, Sequence[Entry]]) -> int:
        """Write outbox entries (stream id, fields as read), by namespace, in one transaction:
        the ledger copy's path, with no per-event object in between. Deleted entries (no
        fields) are skipped; a malformed one raises ValueError before anything is written.
        Returns how many movements were new."""
        recorded_at = self._batch.recorded_at()
        fmt = self._batch.time_format
        batches = [build(ns, entries[ns], fmt, recorded_at) for ns in sorted(entries)]
        if not any(b.movements or b.others for b in batches):
            return 0
        with self.engine.begin() as conn:
            self._batch.begin(conn)
            # The movements go first: on SQLite that takes the write lock before any read.
            inserted = self._batch.insert_movements(conn, [m for b in batches for m in b.movements])
            for b in batches:
                self._write_reservations(conn, b)
                self._batch.insert_transitions(conn, b.namespace, sorted(b.transitions))
                self._write_locations(conn, b.namespace, b.others)
                for e in b.others:  # in stream order: after every event that carried the reference
                    if e.kind == EventKind.CUSTOMER_ERASED:
                        self._erase_customer(conn, b.namespace, e.fields.get("cref", ""))
        return inserted

    def record_movements(self, events: Sequence[OutboxEvent]) -> int:
        """Write only the movements of ``events`` (the durable facts), in one transaction.

        The reservation rows are derived from movements; the ledger copy folds them when it
        records the same events. Skipping the fold here means a write-through never waits on
        the row locks a ledger-copy batch holds on the same reservations.
        """
        rows = self.movement_rows(events)
        if not rows:
            return 0
        with self.engine.begin() as conn:
            return self._batch.insert_movements(conn, rows)

    def movement_rows(self, events: Sequence[OutboxEvent]) -> list[tuple[Any, ...]]:
        """The ``stock_movements`` rows of ``events`` (``MOVEMENT_COLUMNS`` order) as this
        database takes them."""
        recorded_at = self._batch.recorded_at()
        fmt = self._batch.time_format
        by_ns = entries_of(events)
        return [m for ns in sorted(by_ns) for m in build(ns, by_ns[ns], fmt, recorded_at).movements]

    def _write_reservations(self, conn: Connection, batch: NamespaceRows) -> None:
        namespace = batch.namespace
        by_id = batch.reservations
        for ids in self._batch.chunks(sorted(by_id)):  # one lock order for every writer

            def fold_from_batch(ids: Sequence[str] = ids) -> dict[str, dict[str, Any]]:
                # Each row as if the batch held every event of it (the common case: born in
                # this batch); computed while the database seeds and locks the rows.
                return {r: fold.reservation_row(by_id[r]) for r in ids}

            # Make sure each row exists, then lock it: a concurrent writer of the same
            # reservation waits until this transaction commits, and then sees its events.
            locked = self._batch.lock_reservations(conn, namespace, ids, fold_from_batch)
            changes: list[tuple[str, dict[str, Any]]] = []
            redo: list[str] = []
            for reservation_id in ids:
                events = by_id[reservation_id]
                recorded = locked.recorded.get(reservation_id, {})
                if batch_fold.complete(events, recorded):
                    changes.append((reservation_id, locked.speculated[reservation_id]))
                    continue
                row = locked.current(reservation_id)
                new = batch_fold.fold_batch(row, events, recorded)
                if new is None:
                    redo.append(reservation_id)
                elif batch_fold.changed(row, new):
                    changes.append((reservation_id, new))
            if redo:  # the rare cases a merge cannot tell: fold every recorded event
                every = self._reservation_events(conn, namespace, redo)
                for reservation_id in redo:
                    new = fold.reservation_row(every.get(reservation_id, []))
                    if batch_fold.changed(locked.current(reservation_id), new):
                        changes.append((reservation_id, new))
            self._batch.update_reservations(conn, namespace, changes)

    @staticmethod
    def _reservation_events(
        conn: Connection, namespace: str, ids: Sequence[str]
    ) -> dict[str, list[ReservationEvent]]:
        """Every recorded event of these reservations (this transaction's included)."""
        m = MOVEMENTS
        rows = conn.execute(
            select(
                m.c.reservation_id,
                m.c.kind,
                m.c.sku,
                m.c.location_id,
                m.c.seq,
                m.c.occurred_at,
                m.c.channel,
                m.c.qty,
                m.c.details,
            ).where(
                m.c.namespace == namespace,
                m.c.reservation_id.in_(ids),
                m.c.kind.in_(sorted(k.value for k in RESERVATION_KINDS)),
            )
        )
        out: dict[str, list[ReservationEvent]] = {}
        for r in rows:
            event = ReservationEvent(
                kind=r.kind,
                sku=r.sku,
                location_id=r.location_id,
                seq=int(r.seq),
                at=r.occurred_at,
                channel=r.channel or "",
                qty=int(r.qty or 0),
                extra=json.loads(r.details) if r.details else {},
            )
            out.setdefault(r.reservation_id, []).append(event)
        return out

    def _write_locations(
        self, conn: Connection, namespace: str, events: Sequence[OutboxEvent]
    ) -> None:
        latest: dict[str, OutboxEvent] = {}
        for e in events:  # in stream order: the last one of a location wins in this batch
            if e.kind in (EventKind.LOCATION_UPSERTED, EventKind.LOCATION_MOVED_OUT):
                latest[e.location_id] = e
        # A location moved to another stock domain leaves this domain's list (the other
        # domain's events record it there).
        gone = sorted(loc for loc, e in latest.items() if e.kind == EventKind.LOCATION_MOVED_OUT)
        if gone:
            conn.execute(
                LOCATIONS.delete().where(
                    LOCATIONS.c.namespace == namespace, LOCATIONS.c.location_id.in_(gone)
                )
            )
        latest = {loc: e for loc, e in latest.items() if e.kind == EventKind.LOCATION_UPSERTED}
        if not latest:
            return
        values = [
            {
                "namespace": namespace,
                "location_id": loc,
                "name": e.fields.get("name", ""),
                "kind": e.fields.get("loc_kind", "store"),
                "pickup": e.fields.get("pickup") == "1",
                "ship": e.fields.get("ship") == "1",
                "lat": float(e.fields["lat"]) if e.fields.get("lat") else None,
                "lon": float(e.fields["lon"]) if e.fields.get("lon") else None,
                "updated_at": e.at,
            }
            for loc, e in sorted(latest.items())
        ]
        stmt = self._insert(LOCATIONS)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["namespace", "location_id"],
            set_={
                k: excluded[k]
                for k in ("name", "kind", "pickup", "ship", "lat", "lon", "updated_at")
            },
            where=LOCATIONS.c.updated_at < excluded.updated_at,  # never older over newer
        )
        conn.execute(stmt, values)

    # -- GDPR erasure ----------------------------------------------------------------------

    def customer_reservation_ids(self, namespace: str, customer_ref: str) -> list[str]:
        """Reservations the ledger knows to carry ``customer_ref``."""
        t = RESERVATIONS
        stmt = select(t.c.reservation_id).where(
            t.c.namespace == namespace, t.c.customer_ref == customer_ref
        )
        with self.engine.connect() as conn:
            return sorted(str(r) for r in conn.execute(stmt).scalars())

    def erase_customer(self, namespace: str, customer_ref: str, actor: str) -> int:
        """Remove ``customer_ref`` from the ledger's reservations and their hold movements
        (the movements stay) and record the erasure, with only a hash of the reference.
        Returns how many ledger reservations carried it."""
        with self.engine.begin() as conn:
            erased = self._erase_customer(conn, namespace, customer_ref)
            conn.execute(
                insert(ERASURES).values(
                    namespace=namespace,
                    ref_hash=customer_ref_hash(namespace, customer_ref),
                    actor=actor,
                    reservations=erased,
                    erased_at=utcnow(),
                )
            )
        return erased

    def _erase_customer(self, conn: Connection, namespace: str, customer_ref: str) -> int:
        if not customer_ref:
            return 0
        t, m = RESERVATIONS, MOVEMENTS
        erased = conn.execute(
            update(t)
            .where(t.c.namespace == namespace, t.c.customer_ref == customer_ref)
            .values(customer_ref=None)
        ).rowcount
        # A hold's movement keeps the reference in its details (canonical JSON, see
        # movements.py): find those by the exact key-value text, then rewrite each.
        needle = json.dumps({"cref": customer_ref}, separators=(",", ":"))[1:-1]
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = conn.execute(
            select(m.c.id, m.c.details).where(
                m.c.namespace == namespace,
                m.c.kind == EventKind.HELD.value,
                m.c.details.like(pattern, escape="\\"),
            )
        ).all()
        for row in rows:
            details = json.loads(row.details)
            if details.pop("cref", None) != customer_ref:
                continue
            text = json.dumps(details, sort_keys=True, separators=(",", ":")) if details else None
            conn.execute(update(m).where(m.c.id == row.id).values(details=text))
        return int(erased)

    # -- reads (regression check, rebuild, audit) -----------------------------------------

    def max_seq_by_sku(self, namespace: str) -> dict[str, int]:
        """The highest ``seq`` the ledger holds for each SKU of ``namespace``."""
        m = MOVEMENTS
        stmt = (
            select(m.c.sku, func.max(m.c.seq)).where(m.c.namespace == namespace).group_by(m.c.sku)
        )
        with self.engine.connect() as conn:
            return {sku: int(seq) for sku, seq in conn.execute(stmt)}

    def positions(self, namespace: str) -> dict[tuple[str, str], tuple[int, int, int]]:
        """(sku, location) -> (on_hand, reserved, seq) after the latest movement carrying them.

        Events that carry no position (confirm, ready, extend, oversell_risk) change neither
        number, so this is the position as of everything the ledger has recorded.
        """
        stmt = latest_positions_statement(namespace)
        with self.engine.connect() as conn:
            return {
                (r.sku, r.location_id): (int(r.on_hand), int(r.reserved or 0), int(r.seq))
                for r in conn.execute(stmt)
            }


def latest_positions_statement(namespace: str) -> Select[Any]:
    """Each position's newest movement that carries its numbers: (sku, location_id, on_hand,
    reserved, seq, rank = 1)."""
    m = MOVEMENTS
    rank = (
        func.row_number()
        .over(partition_by=(m.c.sku, m.c.location_id), order_by=(m.c.seq.desc(), m.c.id.desc()))
        .label("rank")
    )
    latest = (
        select(m.c.sku, m.c.location_id, m.c.on_hand, m.c.reserved, m.c.seq, rank)
        .where(m.c.namespace == namespace, m.c.on_hand.is_not(None))
        .subquery()
    )
    return select(latest).where(latest.c.rank == 1)
