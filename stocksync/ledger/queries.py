"""Read queries of the audit and the regression check, streamed at ledger scale.

Each query is read through a server-side cursor in pages (``yield_per``), so a ledger of
millions of rows is never held in memory at once: the callers compare page by page.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, Table, distinct, func, select
from sqlalchemy.engine import Engine, Row

from stocksync.ledger.tables import Movement
from stocksync.store.outbox import stream_order

MOVEMENTS = cast(Table, Movement.__table__)  # type: ignore[attr-defined]
PAGE_ROWS = 5_000  # rows per fetch from the server-side cursor


@dataclass(frozen=True, slots=True)
class FoldedPosition:
    """One position's sums in the ledger, with its SKU's seq coverage."""

    sku: str
    location_id: str
    on_hand: int  # Σ d_on_hand
    reserved: int  # Σ d_reserved
    complete_seq: int  # N when the ledger holds every seq 1..N of the SKU, else -1


def folded_positions(
    engine: Engine, namespace: str, page_rows: int = PAGE_ROWS
) -> Generator[list[FoldedPosition], None, None]:
    """Every position's fold, in pages, grouped by SKU (a SKU's positions are consecutive).

    One statement: the per-position sums joined with the per-SKU seq coverage, so the caller
    needs no lookup table of either.
    """
    stmt = folded_positions_statement(namespace)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=page_rows).execute(stmt)
        for rows in result.partitions():
            yield [_folded(r) for r in rows]


def folded_positions_statement(namespace: str) -> Select[Any]:
    """The statement :func:`folded_positions` streams."""
    m = MOVEMENTS
    fold = (
        select(
            m.c.sku,
            m.c.location_id,
            func.sum(m.c.d_on_hand).label("on_hand"),
            func.sum(m.c.d_reserved).label("reserved"),
        )
        .where(m.c.namespace == namespace)
        .group_by(m.c.sku, m.c.location_id)
        .subquery()
    )
    cover = (
        select(
            m.c.sku,
            func.max(m.c.seq).label("top"),
            func.count(distinct(m.c.seq)).label("seqs"),
        )
        .where(m.c.namespace == namespace)
        .group_by(m.c.sku)
        .subquery()
    )
    return (
        select(fold, cover.c.top, cover.c.seqs)
        .join(cover, cover.c.sku == fold.c.sku)
        .order_by(fold.c.sku, fold.c.location_id)
    )


def _folded(r: Row[tuple[str, str, int, int, int, int]]) -> FoldedPosition:
    top, seqs = int(r.top), int(r.seqs)
    return FoldedPosition(
        r.sku, r.location_id, int(r.on_hand), int(r.reserved), top if top == seqs else -1
    )


def max_seqs(
    engine: Engine, namespace: str, page_rows: int = PAGE_ROWS
) -> Generator[list[tuple[str, int]], None, None]:
    """(sku, the highest seq the ledger holds for it), in pages."""
    stmt = max_seqs_statement(namespace)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=page_rows).execute(stmt)
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


def complete_seqs(engine: Engine, namespace: str, skus: Sequence[str]) -> dict[str, int]:
    """SKU -> N for those of ``skus`` whose seqs 1..N are all in the ledger (no gap)."""
    m = MOVEMENTS
    out: dict[str, int] = {}
    with engine.connect() as conn:
        for start in range(0, len(skus), PAGE_ROWS):
            stmt = (
                select(m.c.sku, func.max(m.c.seq), func.count(distinct(m.c.seq)))
                .where(m.c.namespace == namespace, m.c.sku.in_(skus[start : start + PAGE_ROWS]))
                .group_by(m.c.sku)
            )
            out.update({str(s): int(top) for s, top, n in conn.execute(stmt) if top == n})
    return out
