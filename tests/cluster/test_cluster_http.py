"""The API (``stocksync serve`` in cluster mode) on the real cluster: races for the last units
in two domains on different primaries at once, and a cross-domain reservation refused."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import ValkeyCluster
from tests.support.cluster_domains import domain_slot, domains_per_primary
from tests.support.cluster_serve import ClusterServer, cluster_server

CLIENTS_PER_DOMAIN = 150
UNITS_PER_DOMAIN = 20


@pytest.fixture
def server(cluster: ValkeyCluster, tmp_path: Path) -> Iterator[ClusterServer]:
    with cluster_server(cluster.seed_url, tmp_path, "chttp") as running:
        yield running


def two_domains_on_two_primaries(cluster: ValkeyCluster, namespace: str) -> list[str]:
    ports = [node.port for node in cluster.primary_nodes()][:2]
    found = domains_per_primary(cluster.slot_map(), namespace, ports)
    domains = [found[port][0] for port in ports]
    owners = {cluster.primary_for_slot(domain_slot(namespace, d)).port for d in domains}
    assert len(owners) == 2
    return domains


async def add_location(client: httpx.AsyncClient, location_id: str, domain: str) -> None:
    body = {"name": location_id, "kind": "store", "pickup": True, "ship": True, "domain": domain}
    response = await client.put(f"/v1/locations/{location_id}", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["domain"] == domain


async def count(client: httpx.AsyncClient, location_id: str, sku: str, on_hand: int) -> None:
    response = await client.put(f"/v1/stock/{location_id}/{sku}", json={"on_hand": on_hand})
    assert response.status_code == 200, response.text


async def position(client: httpx.AsyncClient, location_id: str, sku: str) -> tuple[int, int]:
    response = await client.get(f"/v1/stock/{location_id}/{sku}")
    assert response.status_code == 200, response.text
    return response.json()["on_hand"], response.json()["reserved"]


def reservation(rid: str, lines: list[tuple[str, str, int]]) -> dict[str, object]:
    return {
        "reservation_id": rid,
        "channel": "web",
        "ttl_seconds": 600,
        "lines": [{"sku": sku, "location_id": loc, "qty": qty} for sku, loc, qty in lines],
    }


async def test_races_for_the_last_units_in_two_domains_on_two_primaries(
    cluster: ValkeyCluster, server: ClusterServer
) -> None:
    domains = two_domains_on_two_primaries(cluster, server.namespace)
    sku = "RACE-" + uuid.uuid4().hex[:8]
    async with server.client(2 * CLIENTS_PER_DOMAIN) as client:
        for domain in domains:
            await add_location(client, f"store-{domain}", domain)
            await count(client, f"store-{domain}", sku, UNITS_PER_DOMAIN)
        start = asyncio.Event()

        async def attempt(domain: str, i: int) -> tuple[str, int, str]:
            await start.wait()
            body = reservation(f"{domain}-{i}", [(sku, f"store-{domain}", 1)])
            response = await client.post("/v1/reservations", json=body)
            outcome = response.json().get("code", response.json().get("state"))
            return domain, response.status_code, outcome

        tasks = [
            asyncio.create_task(attempt(domain, i))
            for i in range(CLIENTS_PER_DOMAIN)
            for domain in domains
        ]
        start.set()
        outcomes = Counter(await asyncio.gather(*tasks))
        losers = CLIENTS_PER_DOMAIN - UNITS_PER_DOMAIN
        assert outcomes == {
            **{(d, 201, "held"): UNITS_PER_DOMAIN for d in domains},
            **{(d, 409, "insufficient_stock"): losers for d in domains},
        }
        for domain in domains:
            held = await position(client, f"store-{domain}", sku)
            assert held == (UNITS_PER_DOMAIN, UNITS_PER_DOMAIN)
    # Each domain's keys are on its own primary, and only there.
    for domain in domains:
        slot = domain_slot(server.namespace, domain)
        owner = cluster.primary_for_slot(slot)
        for node in cluster.primary_nodes():
            keys = int(node.command("CLUSTER", "COUNTKEYSINSLOT", slot))
            assert (keys > 0) == (node.port == owner.port), (domain, node.name)


async def test_a_cross_domain_reservation_is_refused_and_changes_nothing(
    cluster: ValkeyCluster, server: ClusterServer
) -> None:
    north, south = two_domains_on_two_primaries(cluster, server.namespace)
    sku = "CROSS-" + uuid.uuid4().hex[:8]
    lines = [(sku, "store-north", 2), (sku, "store-south", 3)]
    async with server.client(4) as client:
        await add_location(client, "store-north", north)
        await add_location(client, "store-south", south)
        await count(client, "store-north", sku, 2)
        await count(client, "store-south", sku, 3)

        refused = await client.post("/v1/reservations", json=reservation("cross-1", lines))
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["code"] == "cross_domain"
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "store-north" in problem["detail"]
        assert "store-south" in problem["detail"]

        assert await position(client, "store-north", sku) == (2, 0)
        assert await position(client, "store-south", sku) == (3, 0)
        assert (await client.get("/v1/reservations/cross-1")).status_code == 404
        # The refused id was never claimed for a domain: it, and another id, hold in either.
        again = await client.post("/v1/reservations", json=reservation("cross-1", lines[:1]))
        assert again.status_code == 201, again.text
        other = await client.post("/v1/reservations", json=reservation("cross-2", lines[1:]))
        assert other.status_code == 201, other.text
        assert await position(client, "store-north", sku) == (2, 2)
        assert await position(client, "store-south", sku) == (3, 3)
