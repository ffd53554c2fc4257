"""A change no replica confirmed is 503 replication_timeout with Retry-After: it WAS applied on
the primary, and retrying the same request answers as the first would have (idempotent)."""

from __future__ import annotations

import httpx

from stocksync.api.deps import Services
from stocksync.store.replica_wait import ReplicaWait
from stocksync.store.transport import StandaloneTransport
from tests.support.api import Seed


async def test_an_unreplicated_reservation_is_503_and_its_retry_is_the_same_hold(
    services: Services, client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    store = services.store
    transport = store.transport
    # The suite's server has no replica: every wait times out.
    store.transport = StandaloneTransport(store.client, ReplicaWait("wait", 20))
    body = {
        "reservation_id": f"unreplicated-{sku}",
        "channel": "web",
        "lines": [{"sku": sku, "location_id": "store-a", "qty": 2}],
        "ttl_seconds": 600,
    }
    try:
        r = await client.post("/v1/reservations", json=body)
    finally:
        store.transport = transport
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "replication_timeout"
    assert "applied on the primary" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) >= 1
    # Applied all the same, and the retry is the same hold, not a second one.
    assert (await client.get(f"/v1/stock/store-a/{sku}")).json()["reserved"] == 2
    retried = await client.post("/v1/reservations", json=body)
    assert retried.status_code in (200, 201), retried.text
    assert retried.json()["state"] == "held"
    assert (await client.get(f"/v1/stock/store-a/{sku}")).json()["reserved"] == 2
