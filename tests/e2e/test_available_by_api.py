"""Availability by a time through HTTP: each location's next arrival, and with ``by`` what
can be promised then (available now plus the supplies and transfers expected by then)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from stocksync.api.deps import Services
from tests.support.api import Seed, post_ok
from tests.support.keyspace import snapshot


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def rows(client: httpx.AsyncClient, **params: Any) -> dict[str, dict[str, Any]]:
    r = await client.get("/v1/availability", params=params)
    assert r.status_code == 200, r.text
    return {row["location_id"]: row for row in r.json()["locations"]}


async def test_available_by_counts_what_is_expected_by_then(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    tuesday, thursday = now + timedelta(days=2), now + timedelta(days=4)
    await seed(sku, 10, "wh-north", kind="warehouse")
    await seed(sku, 2, "store-a")
    await seed(sku, 0, "store-b")
    supply = {"qty": 2, "expected_at": iso(thursday)}
    assert (await client.put(f"/v1/stock/store-b/{sku}/incoming/po-1", json=supply)).is_success
    lines = [{"sku": sku, "qty": 3}]
    ship = {"from_location_id": "wh-north", "to_location_id": "store-a", "lines": lines}
    await post_ok(
        client, "/v1/transfers", {**ship, "transfer_id": "t1", "expected_at": iso(tuesday)}
    )
    await post_ok(client, "/v1/transfers", {**ship, "transfer_id": "t-undated"})

    found = await rows(client, sku=sku)
    assert found["store-a"]["next_arrival"] == {
        "kind": "transfer",
        "id": "t1",
        "qty": 3,
        "expected_at": iso(tuesday),
    }
    assert found["store-b"]["next_arrival"]["id"] == "po-1"
    assert found["wh-north"]["next_arrival"] is None
    assert {row["available_by"] for row in found.values()} == {None}
    assert found["store-a"]["available"] == 2  # nothing on its way counts now

    wednesday = await rows(client, sku=sku, by=iso(tuesday + timedelta(days=1)))
    assert {loc: row["available_by"] for loc, row in wednesday.items()} == {
        "wh-north": 4,
        "store-a": 5,  # 2 + t1; the undated transfer is promised at no time
        "store-b": 0,
    }
    friday = await rows(client, sku=sku, by=iso(thursday + timedelta(days=1)))
    assert friday["store-b"]["available_by"] == 2
    nearby = await rows(client, sku=sku, near="52.52,13.40", by=iso(thursday))
    assert nearby["store-b"]["available_by"] == 2


async def test_a_bad_by_is_refused(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 1)
    far = datetime.now(UTC) + timedelta(days=367)
    before = await snapshot(services.store.client, services.settings.namespace)
    for by in ("2030-03-14T10:00:00", "1900000000", "thursday", iso(far)):
        r = await client.get("/v1/availability", params={"sku": sku, "by": by})
        assert (r.status_code, r.json()["code"]) == (422, "validation_error"), by
        assert r.json()["errors"][0]["loc"] == ["query", "by"]
    assert await snapshot(services.store.client, services.settings.namespace) == before
    r = await client.put(
        "/v1/pools/web-a",
        json={"name": "Web", "channels": ["web"], "locations": [{"location_id": "store-a"}]},
    )
    assert r.is_success, r.text
    soon = iso(datetime.now(UTC) + timedelta(days=1))
    r = await client.get("/v1/availability", params={"sku": sku, "pool": "web-a", "by": soon})
    assert (r.status_code, r.json()["errors"][0]["loc"]) == (422, ["query", "by"])
