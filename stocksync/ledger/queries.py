"""Read queries of the audit and the regression check, streamed at ledger scale.

Each query is read through a server-side cursor in pages (``yield_per``), so a ledger of
millions of rows is never held in memory at once: the callers compare page by page.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Select, Subquery, Table, case, distinct, func, or_, select, type_coerce
from sqlalchemy.engine import Engine
from sqlalchemy.types import NullType

from stocksync.ledger.tables import Movement
from stocksync.store.outbox import stream_order

MOVEMENTS = cast(Table, Movement.__table__)  # type: ignore[attr-defined]
# What the audit compares per position: the sum of each one's deltas (d_<name>) in the ledger
# against the position hash in Redis. The buckets beyond the shelf are empty at most positions,
# so they travel as one string per SKU listing only the positions that have any (BEYOND).
BEYOND = ("damaged", "quality_control", "in_transit")
AUDITED = ("on_hand", "reserved", *BEYOND)
NOTHING_BEYOND = (0,) * len(BEYOND)
PAGE_ROWS = 5_000  # rows per fetch from the server-side cursor
SKU_PAGE_ROWS = 1_000  # SKU rows (each with all its positions) per fetch


@dataclass(frozen=True, slots=True)
class FoldedSku:
    """One SKU's positions in the ledger, with their sums, and the SKU's seq coverage.

    Columns rather than a row per position: the audit sends ``locations`` to Redis as it is
    and compares the sums as whole lists, and ``beyond`` as one string (audit_read.lua builds
    the same string from Redis).
    """

    sku: str
    locations: str  # each position's location id, one a line
    on_hand: list[int]  # Σ d_on_hand, per position in the order of locations
    reserved: list[int]  # Σ d_reserved, likewise
    # The positions with units beyond the shelf, in the order of locations, a line each:
    # "<location>:<Σ d_damaged>:<Σ d_quality_control>:<Σ d_in_transit>" ('' when none).
    beyond: str
    complete_seq: int  # N when the ledger holds every seq 1..N of the SKU, else -1

    def positions(self) -> dict[str, tuple[int, ...]]:
        """Each position's numbers in :data:`AUDITED` order, by location id."""
        beyond = parse_beyond(self.beyond)
        return {
            loc: (on_hand, reserved, *beyond.get(loc, NOTHING_BEYOND))
            for loc, on_hand, reserved in zip(
                self.locations.split("\n"), self.on_hand, self.reserved, strict=True
            )
        }


def beyond_line(location_id: str, buckets: Sequence[int]) -> str:
    """A position's line of :attr:`FoldedSku.beyond` ('' when its buckets are all empty)."""
    if not any(buckets):
        return ""
    return ":".join((location_id, *map(str, buckets))) + "\n"


def parse_beyond(text: str) -> dict[str, tuple[int, ...]]:
    """:attr:`FoldedSku.beyond` as location id -> (damaged, quality_control, in_transit)."""
    out = {}
    for line in text.splitlines():
        loc, *buckets = line.split(":")
        out[loc] = tuple(int(b) for b in buckets)
    return out


def folded_skus(
    engine: Engine,
    namespace: str,
    skus: Sequence[str] | None = None,
    page_rows: int = SKU_PAGE_ROWS,
) -> Generator[list[FoldedSku], None, None]:
    """Every SKU's fold (or only ``skus``'), in pages of SKUs in SKU order.

    On PostgreSQL one statement groups the positions per SKU on the server (strings and
    integer arrays, which the driver decodes in C); elsewhere the per-position rows are
    grouped here.
    """
    per_sku = engine.dialect.name == "postgresql"
    if per_sku:
        stmt = folded_positions_statement(namespace, skus)
    else:
        stmt = _per_position_statement(namespace, skus)
    with engine.connect() as conn:
        if per_sku:  # a statement run in pages gains nothing from JIT compiling it first
            conn.exec_driver_sql("SET LOCAL jit = off")
        result = conn.execution_options(yield_per=page_rows if per_sku else PAGE_ROWS).execute(stmt)
        # Closed here even when the reader stops early: a server-side cursor left to the
        # garbage collector is closed after its connection, and psycopg complains then.
        with result:
            if per_sku:
                for rows in result.partitions():
                    yield [FoldedSku(*r) for r in rows]
            else:
                yield from _grouped(result, page_rows)


def folded_positions_statement(namespace: str, skus: Sequence[str] | None = None) -> Select[Any]:
    """The statement :func:`folded_skus` streams from PostgreSQL: the per-position sums,
    grouped per SKU, joined with the SKU's seq coverage; both sides read the position index
    in SKU order (index-only), so they merge without a sort."""
    fold = _position_sums(namespace, skus)
    # One aggregate node feeds the aggregates the same rows in the same order, so the n-th
    # line of locations and the n-th element of each array are the same position.
    positions = (
        select(
            fold.c.sku,
            func.string_agg(fold.c.location_id, "\n").label("locations"),
            # Typed as nothing: the driver's lists of ints as they are, not re-processed.
            type_coerce(func.array_agg(fold.c.on_hand), NullType()).label("on_hand"),
            type_coerce(func.array_agg(fold.c.reserved), NullType()).label("reserved"),
            func.coalesce(func.string_agg(_beyond_line(fold), ""), "").label("beyond"),
        )
        .group_by(fold.c.sku)
        .subquery()
    )
    cover = _cover(namespace, skus)
    return (
        select(positions, cover.c.complete)
        .join(cover, cover.c.sku == positions.c.sku)
        .order_by(positions.c.sku)
    )


def _beyond_line(fold: Subquery) -> Any:
    """:func:`beyond_line` in SQL: NULL (skipped by string_agg) when the buckets are empty."""
    buckets = [fold.c[b] for b in BEYOND]
    text = [fold.c.location_id, *(part for b in buckets for part in (":", b)), "\n"]
    return case((or_(*(b != 0 for b in buckets)), func.concat(*text)), else_=None)


def _per_position_statement(namespace: str, skus: Sequence[str] | None) -> Select[Any]:
    fold = _position_sums(namespace, skus)
    cover = _cover(namespace, skus)
    return (
        select(fold, cover.c.complete)
        .join(cover, cover.c.sku == fold.c.sku)
        .order_by(fold.c.sku, fold.c.location_id)
    )


def _position_sums(namespace: str, skus: Sequence[str] | None) -> Subquery:
    """(sku, location, Σ d_<bucket> for each bucket of AUDITED) per position of the ledger."""
    m = MOVEMENTS
    return (
        select(
            m.c.sku,
            m.c.location_id,
            *(func.sum(m.c["d_" + n]).label(n) for n in AUDITED),
        )
        .where(*_where(namespace, skus))
        .group_by(m.c.sku, m.c.location_id)
        .subquery()
    )


def _where(namespace: str, skus: Sequence[str] | None) -> list[Any]:
    m = MOVEMENTS
    return [m.c.namespace == namespace] + ([] if skus is None else [m.c.sku.in_(skus)])


def _cover(namespace: str, skus: Sequence[str] | None) -> Any:
    """Per SKU: N when seqs 1..N are all in the ledger (max = count of distinct), else -1."""
    m = MOVEMENTS
    top = func.max(m.c.seq)
    return (
        select(
            m.c.sku, case((top == func.count(distinct(m.c.seq)), top), else_=-1).label("complete")
        )
        .where(*_where(namespace, skus))
        .group_by(m.c.sku)
        .subquery()
    )


def _grouped(rows: Iterable[Any], page_rows: int) -> Generator[list[FoldedSku], None, None]:
    """Per-position rows in SKU order as FoldedSku pages."""
    page: list[FoldedSku] = []
    for sku, group in groupby(rows, key=itemgetter(0)):
        positions = list(group)  # each: sku, location, the AUDITED sums, complete
        page.append(
            FoldedSku(
                sku,
                "\n".join(p[1] for p in positions),
                [int(p[2]) for p in positions],
                [int(p[3]) for p in positions],
                "".join(beyond_line(p[1], [int(v) for v in p[4:7]]) for p in positions),
                int(positions[0][7]),
            )
        )
        if len(page) == page_rows:
            yield page
            page = []
    if page:
        yield page


def max_seqs(
    engine: Engine, namespace: str, page_rows: int = PAGE_ROWS
) -> Generator[list[tuple[str, int]], None, None]:
    """(sku, the highest seq the ledger holds for it), in pages."""
    stmt = max_seqs_statement(namespace)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=page_rows).execute(stmt)
        with result:  # closed before its connection, also when the reader stops early
            for rows in result.partitions():
                yield [(str(sku), int(seq)) for sku, seq in rows]


def max_seqs_statement(namespace: str) -> Select[Any]:
    """The statement :func:`max_seqs` streams."""
    m = MOVEMENTS
    return select(m.c.sku, func.max(m.c.seq)).where(m.c.namespace == namespace).group_by(m.c.sku)


def newest_stream_id(engine: Engine, namespace: str) -> str | None:
    """The highest outbox stream id among the namespace's movements (None: no movement).

    Event ids are ``<namespace>/<ms>-<counter>`` with a 13-digit ``ms``, so the text order of
    the unique ``event_id`` index finds the newest millisecond; the counters of that one
    millisecond are then compared as numbers (``-10`` sorts before ``-9`` as text).
    """
    m = MOVEMENTS
    with engine.connect() as conn:
        top = conn.execute(
            select(m.c.event_id)
            .where(m.c.namespace == namespace)
            .order_by(m.c.event_id.desc())
            .limit(1)
        ).scalar()
        if top is None:
            return None
        ms = str(top).rpartition("/")[2].partition("-")[0]
        same_ms = conn.execute(
            select(m.c.event_id).where(
                m.c.namespace == namespace, m.c.event_id >= f"{namespace}/{ms}-"
            )
        ).scalars()
        return max((str(e).rpartition("/")[2] for e in same_ms), key=stream_order)
