"""Audit: compare Redis with the fold of the ledger for every position."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields

import anyio
import anyio.to_thread
from redis.exceptions import RedisError
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from stocksync.ledger.tables import Movement
from stocksync.metrics import Metrics
from stocksync.store.keys import ON_HAND, RESERVED
from stocksync.store.redis_store import RedisStockStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drift:
    sku: str
    location_id: str
    redis_on_hand: int
    ledger_on_hand: int
    redis_reserved: int
    ledger_reserved: int

    @property
    def units(self) -> int:
        return abs(self.redis_on_hand - self.ledger_on_hand) + abs(
            self.redis_reserved - self.ledger_reserved
        )


@dataclass(frozen=True)
class AuditReport:
    positions: int  # compared
    in_flight: int  # skipped: Redis has events the ledger has not written yet
    drifts: list[Drift]

    @property
    def drift_units(self) -> int:
        return sum(d.units for d in self.drifts)


def ledger_fold(engine: Engine, namespace: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(sku, location) -> (Σ d_on_hand, Σ d_reserved) over every movement in the ledger."""
    with Session(engine) as session:
        rows = session.exec(
            select(
                Movement.sku,
                Movement.location_id,
                func.sum(Movement.d_on_hand),
                func.sum(Movement.d_reserved),
            )
            .where(Movement.namespace == namespace)
            .group_by(col(Movement.sku), col(Movement.location_id))
        ).all()
    return {(sku, loc): (int(on_hand), int(reserved)) for sku, loc, on_hand, reserved in rows}


def complete_seqs(engine: Engine, namespace: str) -> dict[str, int]:
    """SKU -> N where the ledger holds every seq 1..N of the SKU (no gap below its top).

    The ledger can hold a SKU's newest event while older ones are still on their way (a dead
    writer's unclaimed entries, a sale written through ahead of the writer): such a SKU is in
    flight, not drifting.
    """
    with Session(engine) as session:
        rows = session.exec(
            select(Movement.sku, func.max(Movement.seq), func.count(func.distinct(Movement.seq)))
            .where(Movement.namespace == namespace)
            .group_by(col(Movement.sku))
        ).all()
    return {sku: int(top) for sku, top, count in rows if int(top) == int(count)}


async def audit(store: RedisStockStore, engine: Engine, namespace: str) -> AuditReport:
    """Every position whose SKU the ledger has caught up with, compared unit by unit."""
    redis_seqs: dict[str, str] = await store.client.hgetall(store.keys.seq)  # type: ignore[assignment]
    ledger = await anyio.to_thread.run_sync(complete_seqs, engine, namespace)
    fold = await anyio.to_thread.run_sync(ledger_fold, engine, namespace)
    positions: set[tuple[str, str]] = set(fold)
    for sku in redis_seqs:
        locations: set[str] = await store.client.smembers(store.keys.sku_locations(sku))  # type: ignore[assignment]
        positions.update((sku, loc) for loc in locations)
    settled = sorted(p for p in positions if int(redis_seqs.get(p[0], 0)) == ledger.get(p[0], -1))
    async with store.client.pipeline(transaction=False) as pipe:
        for sku, loc in settled:
            pipe.hmget(store.keys.position(sku, loc), ON_HAND, RESERVED)
        values = await pipe.execute()
    drifts = []
    for (sku, loc), (on_hand, reserved) in zip(settled, values, strict=True):
        r_on_hand, r_reserved = int(on_hand or 0), int(reserved or 0)
        l_on_hand, l_reserved = fold.get((sku, loc), (0, 0))
        if (r_on_hand, r_reserved) != (l_on_hand, l_reserved):
            drifts.append(Drift(sku, loc, r_on_hand, l_on_hand, r_reserved, l_reserved))
    return AuditReport(len(settled), len(positions) - len(settled), drifts)


@dataclass(frozen=True)
class AuditSummary:
    """What the newest audit found, kept in Redis for `stocksync status`."""

    at_ms: int  # Redis server time when it was recorded
    positions: int
    in_flight: int
    drifting: int  # positions
    units: int


async def record_audit(store: RedisStockStore, report: AuditReport) -> AuditSummary:
    """Keep ``report``'s summary: the workers audit in a process of their own, and an
    operator's `stocksync status` reads it from here."""
    seconds, micros = await store.client.time()
    summary = AuditSummary(
        at_ms=int(seconds) * 1000 + int(micros) // 1000,
        positions=report.positions,
        in_flight=report.in_flight,
        drifting=len(report.drifts),
        units=report.drift_units,
    )
    await store.client.hset(store.keys.last_audit, mapping=asdict(summary))  # type: ignore[arg-type]
    return summary


async def last_audit(store: RedisStockStore) -> AuditSummary | None:
    """The newest recorded audit, if any ran on this namespace."""
    raw: dict[str, str] = await store.client.hgetall(store.keys.last_audit)  # type: ignore[assignment]
    if not raw:
        return None
    return AuditSummary(**{f.name: int(raw.get(f.name, 0)) for f in fields(AuditSummary)})


async def run_audits(
    store: RedisStockStore, engine: Engine, namespace: str, metrics: Metrics, interval: float
) -> None:
    """Audit periodically and export the drift (``stocksync_ledger_drift_units``)."""
    while True:
        try:
            report = await audit(store, engine, namespace)
            await record_audit(store, report)
            metrics.ledger_drift_units.set(report.drift_units)
            metrics.ledger_drift_positions.set(len(report.drifts))
            if report.drifts:
                log.error(
                    "ledger drift: %d position(s), %d unit(s)",
                    len(report.drifts),
                    report.drift_units,
                )
        except (RedisError, SQLAlchemyError) as exc:
            log.warning("audit failed: %s", exc)
        await anyio.sleep(interval)
