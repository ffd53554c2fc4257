"""The core's side of connectors: discovery by entry point, config files, webhook routing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from connectors.framework.state import ConnectorState
from stocksync import plugins
from stocksync.cli.main import app
from stocksync.domain.errors import NotFound
from stocksync.ledger.db import create_tables, make_engine


def test_plugins_available_lists_the_installed_connectors() -> None:
    assert {"square", "warehouse", "shopify"} <= set(plugins.available())


def test_plugins_load_unknown_connector_is_not_found() -> None:
    with pytest.raises(NotFound, match="no connector named 'nope'"):
        plugins.load("nope", {})


def test_plugins_read_config_refuses_top_level_values(tmp_path: Path) -> None:
    config = tmp_path / "connectors.toml"
    config.write_text("poll_seconds = 5\n[square]\nx = 1\n")
    with pytest.raises(ValueError, match="poll_seconds"):
        plugins.read_config(config)


def test_cli_connector_list_prints_names() -> None:
    result = CliRunner().invoke(app, ["connector", "list"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == sorted(result.stdout.split())
    assert "square" in result.stdout.split()


def test_cli_connector_run_without_a_table_for_it_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "connectors.toml"
    config.write_text("")
    result = CliRunner().invoke(app, ["connector", "run", "square", "--config", str(config)])
    assert result.exit_code == 2
    assert "no table for: square" in result.output


async def test_webhook_of_an_unconfigured_connector_is_a_404_problem(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/connectors/square/webhook", content=b"{}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"


def test_cli_dead_letters_lists_reasons_and_payloads(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'stocksync.db'}")
    create_tables(engine)
    ConnectorState(engine, "square").dead_letter("webhook", "unknown location 'L9'", '{"a": 1}')
    env = {"STOCKSYNC_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["connector", "dead-letters", "square", "--payloads"], env=env)
    assert result.exit_code == 0, result.output
    assert "unknown location 'L9'" in result.stdout
    assert '{"a": 1}' in result.stdout
    other = CliRunner().invoke(app, ["connector", "dead-letters", "shopify"], env=env)
    assert "no dead letters for shopify" in other.stdout


async def test_webhook_bodies_have_their_own_size_limit(client: httpx.AsyncClient) -> None:
    order_sized = b"{" + b" " * 200_000 + b"}"  # over the API's 64 KiB, under the webhooks' 1 MiB
    webhook = await client.post("/v1/connectors/square/webhook", content=order_sized)
    assert webhook.status_code == 404  # it reached the router (no connector is configured)
    too_big = await client.post("/v1/connectors/square/webhook", content=b" " * 1_100_000)
    assert too_big.status_code == 413
    assert too_big.json()["detail"].startswith("bodies are limited to 1048576 bytes")
    api = await client.post("/v1/reservations", content=order_sized)
    assert api.status_code == 413
