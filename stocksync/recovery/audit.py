"""Audit: compare Redis with the fold of the ledger for every position."""

from __future__ import annotations

import logging
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, fields
from hashlib import blake2b

import anyio
import anyio.to_thread
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from stocksync.ledger.queries import FoldedPosition, complete_seqs, folded_positions
from stocksync.metrics import Metrics
from stocksync.recovery.lease import Lease, lease_seconds, run_under_lease
from stocksync.store.redis_store import RedisStockStore

log = logging.getLogger(__name__)

AUDIT_PAGE = 1_000  # positions per script call (each call is ~1 ms of Redis time)


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


async def audit(
    store: RedisStockStore, engine: Engine, namespace: str, page: int = AUDIT_PAGE
) -> AuditReport:
    """Every position whose SKU the ledger has caught up with, compared unit by unit.

    Two streamed passes, one round trip per page each, memory bounded by a page plus 8 bytes
    per ledger position: the ledger's fold drives reads of the same positions in Redis
    (``audit_read``); then a SCAN of Redis's position keys (``audit_scan``) finds positions
    the ledger has never seen. A SKU counts as settled when Redis's seq equals N and the ledger
    holds every seq 1..N; its positions are compared, the others are in flight.
    """
    tally = _Tally()
    ledger_positions = array("q")
    settled_skus = array("q")
    pages = folded_positions(engine, namespace)
    try:
        while (chunk := await anyio.to_thread.run_sync(next, pages, None)) is not None:
            for start in range(0, len(chunk), page):
                await _compare_page(store, chunk[start : start + page], tally, settled_skus)
            ledger_positions.extend(_digest(f"{p.location_id}:{p.sku}") for p in chunk)
    finally:
        await anyio.to_thread.run_sync(pages.close)
    known = array("q", sorted(ledger_positions))
    settled = array("q", sorted(settled_skus))
    del ledger_positions, settled_skus
    suspects: list[tuple[str, str]] = []  # only in Redis, not zero, of a settled SKU
    async for sku, loc, on_hand, reserved in _scan_positions(store, page):
        if _has(known, _digest(f"{loc}:{sku}")):
            continue  # compared, or counted in flight, by the first pass
        if not _has(settled, _digest(sku)):
            tally.in_flight += 1
        elif (on_hand, reserved) == (0, 0):
            tally.positions += 1
        else:
            suspects.append((sku, loc))
    await _compare_unknown(store, engine, namespace, suspects, tally)
    return AuditReport(tally.positions, tally.in_flight, tally.drifts)


async def _scan_positions(
    store: RedisStockStore, page: int
) -> AsyncIterator[tuple[str, str, int, int]]:
    """Every position key of the namespace with its numbers, a SCAN step per call."""
    marker = store.keys.positions_pattern[:-1]  # ss:{ns}:pos:
    cursor = "0"
    while True:
        reply = await store.run("audit_scan", cursor, page)
        cursor = str(reply[0])
        for i in range(1, len(reply), 3):
            loc, _, sku = str(reply[i])[len(marker) :].partition(":")
            yield sku, loc, int(reply[i + 1]), int(reply[i + 2])
        if cursor == "0":
            return


async def _compare_unknown(
    store: RedisStockStore,
    engine: Engine,
    namespace: str,
    suspects: list[tuple[str, str]],
    tally: _Tally,
) -> None:
    """Positions the ledger has no row for, of SKUs settled in the first pass: settled still
    (a write between the passes puts them in flight), they drift by all of their units."""
    skus = sorted({sku for sku, _ in suspects})
    ledger = await anyio.to_thread.run_sync(complete_seqs, engine, namespace, skus)
    for start in range(0, len(suspects), AUDIT_PAGE):
        rows = suspects[start : start + AUDIT_PAGE]
        reply = await store.run("audit_read", *(v for row in rows for v in row))
        for i, (sku, loc) in enumerate(rows):
            on_hand, reserved, seq = (int(v) for v in reply[3 * i : 3 * i + 3])
            if seq != ledger.get(sku, -1):
                tally.in_flight += 1
                continue
            tally.positions += 1
            if (on_hand, reserved) != (0, 0):
                tally.drifts.append(Drift(sku, loc, on_hand, 0, reserved, 0))


@dataclass
class _Tally:
    positions: int = 0
    in_flight: int = 0
    drifts: list[Drift] = field(default_factory=list)


async def _compare_page(
    store: RedisStockStore, rows: list[FoldedPosition], tally: _Tally, settled: array[int]
) -> None:
    args: list[str | int] = []
    for p in rows:
        args += (p.sku, p.location_id)
    reply = await store.run("audit_read", *args)
    for i, p in enumerate(rows):
        on_hand, reserved, seq = (int(v) for v in reply[3 * i : 3 * i + 3])
        if seq != p.complete_seq:
            tally.in_flight += 1
            continue
        if i == 0 or rows[i - 1].sku != p.sku:
            settled.append(_digest(p.sku))  # a SKU's positions are consecutive
        tally.positions += 1
        if (on_hand, reserved) != (p.on_hand, p.reserved):
            tally.drifts.append(
                Drift(p.sku, p.location_id, on_hand, p.on_hand, reserved, p.reserved)
            )


def _digest(text: str) -> int:
    """A 64-bit digest: the compact stand-in for a position or SKU in the sets above (a
    collision, odds ~1e-7 at a million positions, could only hide a Redis-only position)."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _has(sorted_digests: array[int], digest: int) -> bool:
    i = bisect_left(sorted_digests, digest)
    return i < len(sorted_digests) and sorted_digests[i] == digest


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
    store: RedisStockStore,
    engine: Engine,
    namespace: str,
    metrics: Metrics,
    interval: float,
    *,
    lease: Lease | None = None,
    on_report: Callable[[AuditReport], None] | None = None,
) -> None:
    """Audit periodically and export the drift (``stocksync_ledger_drift_units``); with a
    ``lease``, only while this process holds it (one audit per deployment and interval)."""

    async def once() -> None:
        try:
            report = await audit(store, engine, namespace)
            await record_audit(store, report)
        except (RedisError, SQLAlchemyError) as exc:
            log.warning("audit failed: %s", exc)
            return
        metrics.ledger_drift_units.set(report.drift_units)
        metrics.ledger_drift_positions.set(len(report.drifts))
        if report.drifts:
            log.error(
                "ledger drift: %d position(s), %d unit(s)", len(report.drifts), report.drift_units
            )
        if on_report is not None:
            on_report(report)

    await run_under_lease(lease, interval, once)


def audit_lease(store: RedisStockStore, interval: float) -> Lease:
    """The lease the workers' audit loops share (one per namespace)."""
    return Lease(store.client, store.keys.lease("audit"), lease_seconds(interval))
