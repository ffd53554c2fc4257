"""`stocksync status`: the readiness of /readyz for an operator, with the ledger lag, the
frozen SKUs and the newest audit; exit 1 when not ready."""

from __future__ import annotations

import json
from pathlib import Path

import anyio.to_thread
from redis.asyncio import Redis
from typer.testing import CliRunner, Result

from stocksync.cli.main import app
from stocksync.config import Settings
from stocksync.domain.model import Location
from stocksync.ledger.db import create_tables, make_engine
from stocksync.ledger.sql_ledger import SqlLedger
from stocksync.metrics import Metrics
from stocksync.store.keys import Keys
from stocksync.store.redis_store import RedisStockStore
from stocksync.workers.ledger_copy import LedgerCopy
from tests.support.ports import free_port


def env_for(redis_url: str, namespace: str, data_dir: Path) -> dict[str, str]:
    return {
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_DATA_DIR": str(data_dir),
        "STOCKSYNC_LOG_FORMAT": "json",
    }


async def invoke(env: dict[str, str], *args: str) -> Result:
    """The command in a thread: it runs an event loop of its own."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, list(args), env=env))


async def test_cli_status_reports_lag_frozen_skus_and_the_last_audit(
    store: RedisStockStore,
    redis_client: Redis,
    redis_url: str,
    namespace: str,
    sku: str,
    tmp_path: Path,
) -> None:
    env = env_for(redis_url, namespace, tmp_path)
    await store.upsert_location(Location("store-a", "A", "store"))
    await store.set_count(sku, "store-a", 3)
    engine = make_engine(Settings(data_dir=tmp_path).sqlalchemy_url)
    create_tables(engine)
    copy = LedgerCopy(store.outbox, SqlLedger(engine), Metrics(), consumer="status-test")
    await copy.drain_once()
    assert (await invoke(env, "audit")).exit_code == 0  # recorded for status
    await store.set_count(sku, "store-a", 4)  # an event the ledger copy has not read
    await redis_client.sadd(Keys(namespace).regressed, "SKU-FROZEN")  # as a regression does

    result = await invoke(env, "status")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ready" in out
    assert "NOT READY" not in out
    for dependency in ("redis", "database", "scripts", "ledger_copy"):
        assert dependency in out
    assert "1 consumer(s) alive" in out
    assert "lag 1 event(s)" in out
    assert "regressed SKUs (writes refused until `stocksync rebuild`): 1: SKU-FROZEN" in out
    assert "position(s) compared" in out

    result = await invoke(env, "status", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ready"] is True
    assert report["checks"] == {"redis": "ok", "database": "ok"}
    assert report["reported"]["ledger_copy"] == "ok"
    assert report["details"]["ledger_copy"]["lag_events"] == 1
    assert report["regressed_skus"] == {
        "count": 1,
        "skus": ["SKU-FROZEN"],
        "by_domain": {"default": 1},
    }
    assert report["last_audit"]["positions"] == 1
    assert report["last_audit"]["drifting"] == 0
    assert report["last_audit"]["age_seconds"] >= 0
    engine.dispose()


async def test_cli_status_shows_each_domains_lag_and_frozen_skus(
    store: RedisStockStore,
    redis_client: Redis,
    redis_url: str,
    namespace: str,
    sku: str,
    tmp_path: Path,
) -> None:
    env = env_for(redis_url, namespace, tmp_path)
    await store.upsert_location(Location("store-a", "A", "store"))
    await store.upsert_location(Location("store-eu", "EU", "store", domain="eu"))
    engine = make_engine(Settings(data_dir=tmp_path).sqlalchemy_url)
    create_tables(engine)
    for domain in ("default", "eu"):
        copy = LedgerCopy(store.outbox_of(domain), SqlLedger(engine), Metrics(), consumer="c")
        await copy.drain_once()
    await store.set_count(sku, "store-eu", 4)  # eu: one event the copy has not read
    await store.set_count(sku, "store-eu", 5)
    await redis_client.sadd(store.keys_of("eu").regressed, "SKU-EU")

    result = await invoke(env, "status", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    domains = report["details"]["ledger_copy"]["domains"]
    assert (domains["eu"]["lag_events"], domains["default"]["lag_events"]) == (2, 0)
    assert report["details"]["ledger_copy"]["lag_events"] == 2
    assert report["regressed_skus"]["skus"] == ["eu/SKU-EU"]
    assert report["regressed_skus"]["by_domain"] == {"eu": 1}
    result = await invoke(env, "status")
    assert "1: eu/SKU-EU" in result.stdout
    engine.dispose()


def test_cli_status_exits_non_zero_when_redis_is_down(namespace: str, tmp_path: Path) -> None:
    env = env_for(f"redis://127.0.0.1:{free_port()}/0", namespace, tmp_path)
    result = CliRunner().invoke(app, ["status"], env=env)
    assert result.exit_code == 1
    assert "NOT READY" in result.stdout
    assert "error: ConnectionError" in result.stdout
    result = CliRunner().invoke(app, ["status", "--json"], env=env)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["checks"]["redis"] == "error: ConnectionError"
    assert "connecting to 127.0.0.1" in report["errors"]["redis"]  # the operator sees why


def test_cli_status_without_a_worker_reports_no_ledger_copy(
    redis_url: str, namespace: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["status"], env=env_for(redis_url, namespace, tmp_path))
    assert result.exit_code == 0, result.output  # the ledger copy is reported, not required
    assert "absent" in result.stdout
    assert "last audit: none recorded" in result.stdout
