"""`stocksync connector run warehouse` with ``once = true``, as a real subprocess."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stocksync.domain.model import Location
from stocksync.store.redis_store import RedisStockStore
from tests.support.serve import stocksync_cli


def run_cli(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = stocksync_cli("connector", "run", "warehouse", "--config", str(config))
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=90, check=False)


async def test_cli_connector_run_warehouse_once_imports_and_prints_the_summary(
    redis_url: str, namespace: str, store: RedisStockStore, tmp_path: Path, sku: str
) -> None:
    await store.upsert_location(Location("wh-east", "East", "warehouse", ship=True))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    as_of = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    (inbox / "snapshot.csv").write_text(
        f"sku,location_id,on_hand,as_of\n{sku},wh-east,42,{as_of}\n{sku},wh-gone,1,{as_of}\n"
    )
    config = tmp_path / "connectors.toml"
    config.write_text(f'[warehouse]\ninbox = "{inbox}"\nsettle_seconds = 0\nonce = true\n')
    env = {
        **os.environ,
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_DATA_DIR": str(tmp_path / "not-yet-created"),  # made on first use
    }

    done = run_cli(config, env)

    assert done.returncode == 0, done.stderr
    assert "snapshot.csv: snapshot, 2 rows: 1 applied, 0 stale, 0 duplicate, 1 rejected" in (
        done.stdout
    )
    assert (await store.position(sku, "wh-east")).on_hand == 42
    assert (inbox / "processed" / "snapshot.csv.rejects.csv").exists()
    again = run_cli(config, env)  # nothing left in the inbox: exits at once, prints nothing
    assert again.returncode == 0, again.stderr
    assert "rows" not in again.stdout
