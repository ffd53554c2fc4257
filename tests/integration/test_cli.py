"""The typer CLI against the real Redis and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from stocksync.auth.repository import SqlApiKeys
from stocksync.cli.demo import LOCATIONS, PRODUCTS
from stocksync.cli.main import app
from stocksync.config import Settings
from stocksync.ledger.db import make_engine


@pytest.fixture
def env(redis_url: str, namespace: str, tmp_path: Path) -> dict[str, str]:
    return {
        "STOCKSYNC_REDIS_URL": redis_url,
        "STOCKSYNC_NAMESPACE": namespace,
        "STOCKSYNC_DATA_DIR": str(tmp_path),
    }


def run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_cli_keys_create_prints_a_working_key_once(env: dict[str, str], tmp_path: Path) -> None:
    out = run(env, "keys", "create", "--name", "till-3", "--scopes", "read,reserve",
              "--locations", "store-a")  # fmt: skip
    key = out.strip().splitlines()[0]
    assert key.startswith("ssk_")
    keys = SqlApiKeys(make_engine(Settings(data_dir=tmp_path).sqlalchemy_url))
    listed = run(env, "keys", "list")
    assert "till-3" in listed
    assert key.split("_", 2)[2] not in listed
    assert keys.list()[0].locations == "store-a"


def test_cli_keys_create_refuses_unknown_scope(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["keys", "create", "--name", "x", "--scopes", "root"], env=env)
    assert result.exit_code != 0
    assert "scopes" in result.output


@pytest.mark.parametrize("locations", ["", " , "])
def test_cli_keys_create_refuses_an_empty_location_list(
    env: dict[str, str], locations: str
) -> None:
    args = ["keys", "create", "--name", "x", "--scopes", "read", "--locations", locations]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code != 0
    assert "at least one location" in result.output
    assert "x" not in run(env, "keys", "list").split()


def test_cli_demo_loads_data_and_stock_show_prints_a_table(env: dict[str, str]) -> None:
    out = run(env, "demo")
    assert "6 locations" in out
    assert f"{len(LOCATIONS) * len(PRODUCTS)} positions" in out
    assert "the web-berlin pool" in out
    table = run(env, "stock", "show", "SOFA-VELVET-GREEN")
    for location in LOCATIONS:
        assert location.location_id in table
    assert "total" in table
    # loading the demo again keeps the stock as it is (idempotent counts)
    run(env, "demo")
    assert run(env, "stock", "show", "SOFA-VELVET-GREEN") == table


def test_cli_stock_show_unknown_sku_exits_non_zero(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["stock", "show", "NO-SUCH-SKU"], env=env)
    assert result.exit_code == 1
    assert "No stock positions" in result.output
