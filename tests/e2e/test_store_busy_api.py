"""A full group-commit queue refuses with 503 problem+json and Retry-After, changing nothing."""

from __future__ import annotations

import httpx

from stocksync.api.deps import Services
from tests.support.api import Seed


async def test_a_full_batch_queue_is_503_store_busy_and_reserves_nothing(
    services: Services, client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 5)
    batcher = services.store.batcher
    queue_max = batcher.queue_max
    batcher.queue_max = 0  # as if every slot were taken by other requests
    try:
        body = {
            "reservation_id": f"busy-{sku}",
            "channel": "web",
            "lines": [{"sku": sku, "location_id": "store-a", "qty": 1}],
            "ttl_seconds": 600,
        }
        r = await client.post("/v1/reservations", json=body)
    finally:
        batcher.queue_max = queue_max
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "store_busy"
    assert int(r.headers["Retry-After"]) >= 1
    assert (await client.get(f"/v1/reservations/busy-{sku}")).status_code == 404
    assert (await client.get(f"/v1/stock/store-a/{sku}")).json()["reserved"] == 0
