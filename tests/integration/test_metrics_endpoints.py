"""The processes other than the API serve their own /metrics: `stocksync worker` (the ledger
copy, reaper, audits) and `stocksync connector run`, each on ``--metrics-port``, bound to
``--metrics-host`` (loopback unless told; a container needs 0.0.0.0)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from stocksync.cli import connectors as connectors_cli
from stocksync.cli.main import app
from stocksync.domain.model import Line, Location
from stocksync.store.redis_store import RedisStockStore
from tests.support.ports import free_port
from tests.support.serve import running_process, stocksync_cli

WAIT_LIMIT_SECONDS = 45.0
STARTED = b"stocksync worker on namespace"
WRITTEN = "stocksync_ledger_events_written_total"


def samples(text: str) -> dict[str, float]:
    """Unlabelled samples of a text exposition, by name."""
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }


async def test_worker_serves_the_workers_metrics_on_its_metrics_port(
    store: RedisStockStore, redis_url: str, namespace: str, sku: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_DATA_DIR": str(tmp_path),
    }
    log = tmp_path / "worker.log"
    command = stocksync_cli("worker", "--metrics-port", str(port))
    with log.open("wb") as err:
        async with running_process(command, env, stderr=err) as worker:
            assert worker.stdout is not None
            seen = b""
            # The start line is printed after the metrics server is up.
            with anyio.fail_after(WAIT_LIMIT_SECONDS):
                while STARTED not in seen:
                    chunk = await worker.stdout.receive()
                    seen += chunk
            url = f"http://127.0.0.1:{port}/metrics"
            async with httpx.AsyncClient(timeout=10) as http:
                first = samples((await http.get(url)).text)
                assert "stocksync_ledger_lag_events" in first
                assert first["stocksync_regressed_skus"] == 0

                # The numbers are the running workers': the ledger copy's count moves.
                await store.upsert_location(Location("store-a", "A", "store"))
                await store.set_count(sku, "store-a", 2)
                await store.reserve(f"{sku}-r", "web", [Line(sku, "store-a", 1)], ttl_seconds=60)
                deadline = time.monotonic() + WAIT_LIMIT_SECONDS
                while samples((await http.get(url)).text)[WRITTEN] < 3:
                    assert worker.returncode is None, log.read_text()
                    assert time.monotonic() < deadline, "the worker's ledger copy wrote nothing"
                    await anyio.sleep(0.05)  # polling another process's progress, bounded


def test_connector_run_binds_its_metrics_to_the_given_host(
    redis_url: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, str]] = []

    def record(port: int, addr: str, registry: object) -> None:
        calls.append((port, addr))

    monkeypatch.setattr(connectors_cli, "start_http_server", record)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = tmp_path / "connectors.toml"
    config.write_text(f'[warehouse]\ninbox = "{inbox}"\nsettle_seconds = 0\nonce = true\n')
    env = {
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_DATA_DIR": str(tmp_path),
    }
    runner = CliRunner()
    base = ["connector", "run", "warehouse", "--config", str(config), "--metrics-port", "9108"]
    for extra, host in (([], "127.0.0.1"), (["--metrics-host", "0.0.0.0"], "0.0.0.0")):
        result = runner.invoke(app, [*base, *extra], env=env)
        assert result.exit_code == 0, result.output
        assert calls.pop() == (9108, host)
