"""The README's example config loads (so it cannot rot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.shopify.connector import ShopifyConnector
from stocksync import plugins

ROOT = Path(__file__).resolve().parents[2]


def test_create_loads_the_example_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the example's mapping path is relative to the working directory
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", "shpat_example")
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", "shpss_example")
    tables = plugins.read_config(ROOT / "connectors/examples/shopify.toml")
    connector = plugins.load("shopify", tables["shopify"])
    assert isinstance(connector, ShopifyConnector)
    assert connector.orders_location == "warehouse-berlin"
    assert connector.idmap.variants == {"808950810": "SOFA-VELVET-GREEN"}
    assert connector.config.access_token.get_secret_value() == "shpat_example"


def test_create_rejects_a_config_with_a_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SHOPIFY_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", "shpss_example")
    tables = plugins.read_config(ROOT / "connectors/examples/shopify.toml")
    with pytest.raises(ValueError, match="SHOPIFY_ACCESS_TOKEN"):
        plugins.load("shopify", tables["shopify"])
