"""Every process builds its store from the same Settings: a worker and a connector apply the
configured retention and hold caps, as the API does (they once used the built-in defaults)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis

from connectors.framework.commands import PlaceOrder
from connectors.framework.gateway import EngineGateway
from stocksync.cli.connectors import engine_context
from stocksync.cli.runtime import run_with_store
from stocksync.config import Settings
from stocksync.domain.errors import HoldLimitReached
from stocksync.domain.model import Line, Location
from stocksync.store.keys import Keys
from stocksync.store.redis_store import RedisStockStore
from tests.support.serve import running_process, stocksync_cli

RETENTION_SECONDS = 120  # far below the 7-day default, so the default cannot pass for it
WAIT_LIMIT_SECONDS = 30.0


def process_env(redis_url: str, namespace: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_DATA_DIR": str(data_dir),
        "STOCKSYNC_RETENTION_SECONDS": str(RETENTION_SECONDS),
        "STOCKSYNC_REAPER_INTERVAL_SECONDS": "0.05",
    }


async def test_worker_process_applies_the_configured_retention(
    store: RedisStockStore,
    redis_client: Redis,
    redis_url: str,
    namespace: str,
    sku: str,
    tmp_path: Path,
) -> None:
    await store.upsert_location(Location("store-a", "A", "store"))
    await store.set_count(sku, "store-a", 3)
    await store.reserve("short-hold", "web", [Line(sku, "store-a", 1)], ttl_seconds=1)
    key = Keys(namespace).reservation("short-hold")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        command = stocksync_cli("worker")
        env = process_env(redis_url, namespace, tmp_path)
        async with running_process(command, env, stdout=out, stderr=out) as worker:
            deadline = time.monotonic() + WAIT_LIMIT_SECONDS
            # A raw read: reading through a script would expire the hold itself.
            while await redis_client.hget(key, "state") != "expired":
                assert worker.returncode is None, log.read_text()
                assert time.monotonic() < deadline, "the worker's reaper did not expire the hold"
                await anyio.sleep(0.05)  # polling another process's progress, bounded
    assert 0 < await redis_client.ttl(key) <= RETENTION_SECONDS


async def test_connector_process_applies_the_configured_retention(
    store: RedisStockStore,
    redis_client: Redis,
    redis_url: str,
    namespace: str,
    sku: str,
    tmp_path: Path,
) -> None:
    await store.upsert_location(Location("wh-east", "East", "warehouse", ship=True))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    received = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    (inbox / "receipt.csv").write_text(
        f"sku,location_id,qty,received_at,receipt_id\n{sku},wh-east,4,{received},r-1\n"
    )
    config = tmp_path / "connectors.toml"
    config.write_text(f'[warehouse]\ninbox = "{inbox}"\nsettle_seconds = 0\nonce = true\n')
    with anyio.fail_after(90):
        done = await anyio.run_process(
            stocksync_cli("connector", "run", "warehouse", "--config", str(config)),
            env=process_env(redis_url, namespace, tmp_path),
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    assert (await store.position(sku, "wh-east")).on_hand == 4
    records = [k async for k in redis_client.scan_iter(Keys(namespace).idempotency("*", "*"))]
    assert records, "the receipt left no idempotency record"
    for record in records:
        assert 0 < await redis_client.ttl(record) <= RETENTION_SECONDS


def test_connector_store_applies_the_configured_customer_hold_cap(
    redis_url: str, namespace: str, sku: str, tmp_path: Path
) -> None:
    settings = Settings(
        redis_url=redis_url,
        namespace=namespace,
        data_dir=tmp_path,
        max_active_holds_per_customer=1,
    )

    async def place_two_orders(store: RedisStockStore) -> None:
        await store.upsert_location(Location("store-a", "A", "store"))
        await store.set_count(sku, "store-a", 5)
        gateway = EngineGateway(await engine_context(settings, store))
        order = PlaceOrder("o-1", "web", (Line(sku, "store-a", 1),), customer_ref="cust-9")
        await gateway.place_order(order)
        with pytest.raises(HoldLimitReached):
            await gateway.place_order(
                PlaceOrder("o-2", "web", (Line(sku, "store-a", 1),), customer_ref="cust-9")
            )
        assert (await store.position(sku, "store-a")).reserved == 1

    run_with_store(settings, place_two_orders)
