"""Incoming supply through HTTP: PUT and DELETE a supply at a position, and receipts
(adjustments) that name it; every refusal leaves every Redis key as it was."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stocksync.api.deps import Services
from stocksync.domain.transfers import MAX_ARRIVALS
from tests.support.api import Seed, position
from tests.support.keyspace import snapshot

THURSDAY = "2030-03-14T10:00:00Z"
PO = "/v1/stock/store-a/{sku}/incoming/po-4711"


async def refused(
    services: Services,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    status: int,
    code: str,
    **kwargs: Any,
) -> None:
    """Send a request that must be refused: a problem with ``code``, no Redis key changed."""
    before = await snapshot(services.store.client, services.settings.namespace)
    r = await client.request(method, path, **kwargs)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert await snapshot(services.store.client, services.settings.namespace) == before


async def test_a_supply_is_put_replaced_and_deleted(
    client: httpx.AsyncClient, seed: Seed, sku: str
) -> None:
    await seed(sku, 2)
    r = await client.put(PO.format(sku=sku), json={"qty": 5, "expected_at": THURSDAY})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "supply_id": "po-4711",
        "sku": sku,
        "location_id": "store-a",
        "qty": 5,
        "expected_at": "2030-03-14T10:00:00Z",
    }
    shown = await position(client, sku)
    assert (shown["incoming"], shown["available"], shown["on_hand"]) == (5, 2, 2)
    assert shown["arrivals"] == [
        {"kind": "supply", "id": "po-4711", "qty": 5, "expected_at": "2030-03-14T10:00:00Z"}
    ]
    r = await client.put(
        PO.format(sku=sku), json={"qty": 3, "expected_at": "2030-03-14T12:00:00+02:00"}
    )
    assert r.json()["expected_at"] == "2030-03-14T10:00:00Z"
    assert (await position(client, sku))["incoming"] == 3
    r = await client.delete(PO.format(sku=sku))
    assert (r.status_code, r.content) == (204, b"")
    assert (await position(client, sku))["arrivals"] == []
    r = await client.delete(PO.format(sku=sku))
    assert (r.status_code, r.json()["code"]) == (404, "not_found")


async def test_bad_supplies_are_refused_and_change_nothing(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 2)
    path = PO.format(sku=sku)
    good = {"qty": 1, "expected_at": THURSDAY}
    for body in (
        {"qty": 1},
        {"expected_at": THURSDAY},
        {"qty": 0, "expected_at": THURSDAY},
        {"qty": 1, "expected_at": "2030-03-14T10:00:00"},
        {"qty": 1, "expected_at": 1900000000},
        {**good, "note": "x"},
    ):
        await refused(services, client, "PUT", path, 422, "validation_error", json=body)
    bad_id = f"/v1/stock/store-a/{sku}/incoming/po%7C1"
    await refused(services, client, "PUT", bad_id, 422, "validation_error", json=good)
    ghost = f"/v1/stock/ghost/{sku}/incoming/po-1"
    await refused(services, client, "PUT", ghost, 404, "not_found", json=good)
    await refused(services, client, "DELETE", ghost, 404, "not_found")


async def test_a_position_takes_at_most_max_arrivals(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 0)
    for i in range(MAX_ARRIVALS):
        r = await client.put(
            f"/v1/stock/store-a/{sku}/incoming/po-{i}", json={"qty": 1, "expected_at": THURSDAY}
        )
        assert r.status_code == 200
    await refused(
        services,
        client,
        "PUT",
        PO.format(sku=sku),
        409,
        "too_many_arrivals",
        json={"qty": 1, "expected_at": THURSDAY},
    )


async def test_an_adjustment_naming_the_supply_consumes_it(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str
) -> None:
    await seed(sku, 0)
    await client.put(PO.format(sku=sku), json={"qty": 5, "expected_at": THURSDAY})
    receipt = {"delta": 3, "reason": "receipt", "source": "wms", "source_event_id": "g1"}
    path = f"/v1/stock/store-a/{sku}/adjustments"
    r = await client.post(path, json={**receipt, "supply_id": "po-4711"})
    assert r.status_code == 200, r.text
    assert r.json()["on_hand"] == 3
    assert (await position(client, sku))["incoming"] == 2
    again = await client.post(path, json={**receipt, "supply_id": "po-4711"})
    assert (again.json()["replayed"], (await position(client, sku))["incoming"]) == (True, 2)
    await refused(services, client, "POST", path, 409, "idempotency_conflict", json=receipt)
    sale = {**receipt, "delta": -1, "source_event_id": "s1", "supply_id": "po-4711"}
    await refused(services, client, "POST", path, 422, "validation_error", json=sale)


@pytest.mark.parametrize("supply_id", ["", "a b", "x" * 65])
async def test_an_adjustment_with_a_bad_supply_id_is_refused(
    client: httpx.AsyncClient, services: Services, seed: Seed, sku: str, supply_id: str
) -> None:
    await seed(sku, 0)
    body = {"delta": 1, "reason": "receipt", "source": "wms", "source_event_id": "g1"}
    path = f"/v1/stock/store-a/{sku}/adjustments"
    await refused(
        services,
        client,
        "POST",
        path,
        422,
        "validation_error",
        json={**body, "supply_id": supply_id},
    )
