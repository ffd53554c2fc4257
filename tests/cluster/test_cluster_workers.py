"""The workers per stock domain on a real Valkey Cluster: two domains on two primaries, both
copied into the ledger, and a dedicated tail (the event streams' connection) on each."""

from __future__ import annotations

from pathlib import Path

from redis.crc import key_slot

from stocksync.config import Settings
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.recovery.audit import audit_domains
from stocksync.store.connection import open_store
from stocksync.store.keys import Keys
from stocksync.workers.ledger_copy import LedgerCopy
from tests.support.cluster import ValkeyCluster
from tests.support.domains import EU, two_domains

SKU = "SKU-CLUSTER"


async def test_two_domains_on_two_primaries_copied_audited_and_tailed(
    cluster: ValkeyCluster, tmp_path: Path
) -> None:
    owners = cluster.slot_map()
    namespace = next(
        ns
        for ns in (f"cw{n}" for n in range(1000))
        if len({owners[key_slot(Keys(ns, d).anchor.encode())][0] for d in ("default", EU)}) == 2
    )  # the two domains on two primaries
    settings = Settings(redis_url=cluster.seed_url, redis_cluster=True, namespace=namespace)
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    create_tables(engine)
    assert settings.redis_url is not None
    async with open_store(settings, settings.redis_url, pool_size=4) as store:
        tail = store.outbox_of(EU).dedicated()
        try:
            cursor = await tail.last_id()
            await two_domains(store, SKU, 2)
            seen = await tail.tail(cursor, count=100, block_ms=5000)
            assert {e.location_id for e in seen if e.sku == SKU} == {"store-eu"}
            assert all(e.namespace == f"{namespace}:{EU}" for e in seen)
        finally:
            await tail.aclose()
        ledger = SqlLedger(engine)
        for domain in await store.domains(fresh=True):
            copy = LedgerCopy(store.outbox_of(domain), ledger, Metrics(), consumer="c")
            await copy.drain_once()
        reports = await audit_domains(store, engine)
        assert {d: (r.positions, len(r.drifts)) for d, r in reports.items()} == {
            "default": (1, 0),
            EU: (1, 0),
        }
    engine.dispose()
