"""Sales during a database outage: refused with 503 ledger_unavailable, none lost.

The app's ledger runs on the local PostgreSQL through a TCP proxy the test cuts and restores.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from stocksync.api.deps import Services
from stocksync.config import Settings
from stocksync.ledger.db import make_engine
from stocksync.ledger.tables import Movement
from stocksync.workers.ledger_copy import LedgerCopy
from tests.support.api import hold, position, post_ok
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.postgres

SALES = 12


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with tcp_proxy("127.0.0.1", 5432) as p:
        yield p


@pytest.fixture
def settings(
    redis_url: str, namespace: str, tmp_path: Path, postgres_url: str, proxy: TcpProxy
) -> Settings:
    """The app's settings with its ledger (and keys) on PostgreSQL behind the proxy."""
    return Settings(
        redis_url=redis_url,
        database_url=postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
        data_dir=tmp_path,
        namespace=namespace,
        run_workers=False,
        redis_pool_size=32,
        api_key_cache_seconds=3600,  # the key snapshot is not what this test is about
    )


async def fulfil_all(client: httpx.AsyncClient, ids: list[str]) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(client.post(f"/v1/reservations/{rid}/fulfill") for rid in ids))
    )


def ledger_sales(postgres_url: str, namespace: str) -> Counter[str]:
    """``fulfilled`` movements per reservation, read past the proxy."""
    engine = make_engine(postgres_url)
    m = Movement.__table__.c  # type: ignore[attr-defined]
    stmt = select(m.reservation_id).where(m.namespace == namespace, m.kind == "fulfilled")
    try:
        with engine.connect() as conn:
            return Counter(str(r) for r in conn.execute(stmt).scalars())
    finally:
        engine.dispose()


async def test_sales_during_a_database_outage_answer_503_and_none_is_lost(
    client: httpx.AsyncClient,
    services: Services,
    proxy: TcpProxy,
    postgres_url: str,
    sku: str,
    namespace: str,
) -> None:
    location = {"name": "A", "kind": "store", "lat": 52.5, "lon": 13.4, "pickup": True}
    assert (await client.put("/v1/locations/store-a", json=location)).is_success
    assert (await client.put(f"/v1/stock/store-a/{sku}", json={"on_hand": SALES})).is_success
    ids = [f"sale-{i}" for i in range(SALES)]
    for rid in ids:
        await post_ok(client, "/v1/reservations", hold(rid, sku))

    proxy.cut()
    refused = await fulfil_all(client, ids)
    assert [(r.status_code, r.json()["code"]) for r in refused] == [
        (503, "ledger_unavailable")
    ] * SALES
    assert proxy.refused >= 1  # the commits really met the cut database
    for rid in ids:  # Redis holds every sale: it is the truth, the ledger follows
        assert (await client.get(f"/v1/reservations/{rid}")).json()["state"] == "fulfilled"
    assert (await position(client, sku))["on_hand"] == 0
    failed = services.metrics.registry.get_sample_value(
        "stocksync_sale_commit_seconds_count", {"outcome": "failed"}
    )
    assert failed is not None
    assert 1 <= failed <= SALES

    proxy.restore()
    retried_ids = ids[::2]  # the other clients gave up: their sales reach the ledger anyway
    retried = await fulfil_all(client, retried_ids)
    assert [r.status_code for r in retried] == [200] * len(retried_ids)
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in retried)
    assert (await position(client, sku))["on_hand"] == 0  # sold once, not twice
    assert ledger_sales(postgres_url, namespace) == Counter(retried_ids)

    # The ledger copy writes every event (the retried sales' again): each sale exactly once.
    copy = LedgerCopy(services.store.outbox, services.ledger, services.metrics, consumer="t")
    assert await copy.drain_once() > 0
    assert ledger_sales(postgres_url, namespace) == Counter(ids)
