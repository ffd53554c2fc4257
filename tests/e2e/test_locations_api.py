"""Locations through the HTTP API: coordinates within what the geo index can hold."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("lat", "lon"), [(89.0, 13.4), (-85.06, 13.4), (52.5, -180.01), (52.5, False), ("52.5", 13.4)]
)
async def test_put_location_off_the_geo_range_is_422_and_changes_nothing(
    client: httpx.AsyncClient, lat: object, lon: object
) -> None:
    body = {"name": "North", "kind": "store", "lat": 52.5, "lon": 13.4}
    assert (await client.put("/v1/locations/store-north", json=body)).status_code == 201
    for location_id in ("store-north", "store-polar"):
        r = await client.put(f"/v1/locations/{location_id}", json={**body, "lat": lat, "lon": lon})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "validation_error"
    listed = (await client.get("/v1/locations")).json()["locations"]
    assert [(loc["location_id"], loc["lat"], loc["lon"]) for loc in listed] == [
        ("store-north", 52.5, 13.4)
    ]


async def test_put_location_at_the_edge_of_geo_range_is_indexed(client: httpx.AsyncClient) -> None:
    body = {"name": "Edge", "kind": "store", "lat": 85.05112878, "lon": 180}
    r = await client.put("/v1/locations/store-edge", json=body)
    assert r.status_code == 201, r.text
    r = await client.get("/v1/availability", params={"sku": "X", "near": "85,179.9"})
    assert r.status_code == 200, r.text
    r = await client.get("/v1/availability", params={"sku": "X", "near": "89,0"})
    assert r.status_code == 422, r.text


async def test_openapi_bounds_latitude_to_the_geo_range(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["LocationIn"]
    (lat, _null) = schema["properties"]["lat"]["anyOf"]
    assert (lat["minimum"], lat["maximum"]) == (-85.05112878, 85.05112878)
