"""Nearby availability through HTTP: Redis GEOSEARCH within a radius, nearest first."""

from __future__ import annotations

import httpx

from tests.support.api import Seed


async def test_nearby_defaults_to_a_50_km_radius_and_honours_safety_stock(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 4, "store-mitte", lat=52.5219, lon=13.4132)
    await seed(sku, 3, "store-potsdam", lat=52.3989, lon=13.0657)
    await seed(sku, 9, "store-hamburg", lat=53.55, lon=9.99)
    await seed(sku, 5, "wh-east", lat=52.50, lon=13.60, pickup=False, kind="warehouse")
    r = await client.put(f"/v1/stock/store-mitte/{sku}", json={"on_hand": 4, "safety_stock": 3})
    assert r.status_code == 200
    r = await client.get("/v1/availability", params={"sku": sku, "near": "52.40,13.07"})
    body = r.json()
    rows = [(x["location_id"], x["available"]) for x in body["locations"]]
    assert rows == [("store-potsdam", 3), ("store-mitte", 1), ("wh-east", 5)]
    distances = [x["distance_km"] for x in body["locations"]]
    assert distances == sorted(distances)
    assert distances[0] < 1
    assert body["total_available"] == 9
    r = await client.get(
        "/v1/availability",
        params={"sku": sku, "near": "52.40,13.07", "radius_km": 500, "pickup": "true"},
    )
    assert [x["location_id"] for x in r.json()["locations"]] == [
        "store-potsdam",
        "store-mitte",
        "store-hamburg",
    ]
    r = await client.get("/v1/availability", params={"sku": sku})
    assert [x["distance_km"] for x in r.json()["locations"]] == [None] * 4
