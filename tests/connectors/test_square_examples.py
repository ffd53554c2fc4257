"""The README's example config for the Square connector loads as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.square.connector import create
from connectors.square.mapping import BucketRules
from stocksync import plugins

ROOT = Path(__file__).resolve().parents[2]


def test_create_loads_the_example_config_and_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the example names its mapping file relative to the project
    monkeypatch.setenv("SQUARE_ACCESS_TOKEN", "EAAA-example")
    monkeypatch.setenv("SQUARE_WEBHOOK_SIGNATURE_KEY", "example-key")
    table = plugins.read_config(ROOT / "connectors/examples/square.toml")["square"]

    connector = create(table)

    assert connector.name == "square"
    assert connector.ids.skus["W62UWFY35CWMYGVWK6TWJDNI"] == "TEE-RED-M"
    assert connector.config.polled_locations(connector.ids) == ["C6W5YS5QM06F5"]
    assert connector.config.access_token.get_secret_value() == "EAAA-example"
    assert connector.config.bucket_rules() == BucketRules()  # the defaults, spelled out


def test_create_rejects_unknown_keys_and_missing_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SQUARE_ACCESS_TOKEN", raising=False)
    table = plugins.read_config(ROOT / "connectors/examples/square.toml")["square"]
    with pytest.raises(ValueError, match="SQUARE_ACCESS_TOKEN"):
        create(table)
    with pytest.raises(ValueError, match="poll_every"):
        create({**table, "access_token": "t", "poll_every": 3})


def test_square_is_an_installed_connector() -> None:
    assert "square" in plugins.available()
