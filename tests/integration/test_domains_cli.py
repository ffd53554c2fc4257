"""``stocksync domains`` and ``stocksync cluster`` against a real standalone server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from typer.testing import CliRunner

from stocksync.cli.main import app
from stocksync.config import Settings
from stocksync.domain.model import Line, Location
from stocksync.store.keys import Keys
from stocksync.store.redis_store import RedisStockStore

T = TypeVar("T")


@pytest.fixture
def env(redis_url: str, namespace: str, tmp_path: Path) -> dict[str, str]:
    return {
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_DATA_DIR": str(tmp_path),
    }


def on_store(redis_url: str, namespace: str, job: Callable[[RedisStockStore], Awaitable[T]]) -> T:
    async def main() -> T:
        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            return await job(RedisStockStore(client, Settings(namespace=namespace)))
        finally:
            await client.aclose()

    return asyncio.run(main())


async def two_domains(store: RedisStockStore) -> None:
    await store.upsert_location(Location("store-a", "A", "store", 52.5, 13.4, True, True))
    await store.upsert_location(Location("store-n", "N", "store", 53.5, 10.0, domain="north"))
    await store.set_count("SKU-1", "store-a", 5)
    await store.reserve("r1", "web", [Line("SKU-1", "store-a", 1)], 600)
    await store.outbox.create_group("ledger", "0")


def invoke(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_domains_list_and_cluster_status_on_a_standalone_server(
    env: dict[str, str], redis_url: str, namespace: str
) -> None:
    on_store(redis_url, namespace, two_domains)

    code, out = invoke(env, "domains", "list", "--json")
    assert code == 0, out
    listed = {d["domain"]: d for d in json.loads(out)}
    assert {d: (v["locations"], v["node"]) for d, v in listed.items()} == {
        "default": (1, "standalone"),
        "north": (1, "standalone"),
    }
    assert listed["north"]["slot"] == key_slot(Keys(namespace, "north").anchor.encode())

    code, out = invoke(env, "cluster", "status", "--json")
    assert code == 0, out
    status = {d["domain"]: d for d in json.loads(out)}
    events = on_store(redis_url, namespace, lambda s: s.client.xlen(s.keys.outbox))
    assert status["default"]["outbox_entries"] == events > 0
    assert status["north"]["outbox_entries"] is None  # no ledger group there yet
    assert not status["default"]["frozen"]

    code, out = invoke(env, "cluster", "status")
    assert code == 0, out
    assert "north" in out
    assert "standalone" in out


def test_move_location_is_refused_with_active_holds_then_done(
    env: dict[str, str], redis_url: str, namespace: str
) -> None:
    on_store(redis_url, namespace, two_domains)

    code, out = invoke(env, "domains", "move-location", "store-a", "north")
    assert code == 1
    assert "active holds" in out
    on_store(redis_url, namespace, lambda s: s.release("r1"))

    code, out = invoke(env, "domains", "move-location", "store-a", "north")
    assert code == 0, out
    assert "Moved store-a from default to north (1 positions)" in out
    position = on_store(redis_url, namespace, lambda s: s.position("SKU-1", "store-a"))
    assert position.on_hand == 5
    code, out = invoke(env, "domains", "list", "--json")
    assert {d["domain"]: d["locations"] for d in json.loads(out)} == {"default": 0, "north": 2}


def test_move_domain_needs_a_cluster(env: dict[str, str]) -> None:
    code, out = invoke(env, "cluster", "move-domain", "default", "--to", "127.0.0.1:1")
    assert code == 1
    assert "not a cluster" in out


def test_freeze_and_unfreeze_commands(env: dict[str, str], redis_url: str, namespace: str) -> None:
    on_store(redis_url, namespace, two_domains)
    assert invoke(env, "cluster", "freeze", "north")[0] == 0
    code, out = invoke(env, "cluster", "status", "--json")
    assert code == 0, out
    assert {d["domain"]: d["frozen"] for d in json.loads(out)} == {"default": False, "north": True}
    assert invoke(env, "cluster", "unfreeze", "north")[0] == 0
    code, out = invoke(env, "cluster", "status", "--json")
    assert code == 0, out
    assert not any(d["frozen"] for d in json.loads(out))
