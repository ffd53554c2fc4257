"""The README's example config loads (so it cannot rot)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.shopify.connector import ShopifyConnector
from stocksync import plugins
from stocksync.domain.model import Disposition

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
    assert connector.idmap.pools == {"gid://shopify/Location/76543210": "web-berlin"}
    assert connector.config.full_sync_interval_seconds == 300
    assert connector.config.returns.disposition is Disposition.RESTOCK
    assert connector.config.access_token.get_secret_value() == "shpat_example"


def test_create_rejects_a_config_with_a_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SHOPIFY_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", "shpss_example")
    tables = plugins.read_config(ROOT / "connectors/examples/shopify.toml")
    with pytest.raises(ValueError, match="SHOPIFY_ACCESS_TOKEN"):
        plugins.load("shopify", tables["shopify"])


@pytest.mark.parametrize("version", ["2025-07", "2025-10", "unstable", "2026-02", "26-04"])
def test_create_refuses_an_api_version_the_queries_do_not_run_on(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """changeFromQuantity and @idempotent arrive in 2026-01; versions are named by quarter."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", "shpat_example")
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", "shpss_example")
    table = plugins.read_config(ROOT / "connectors/examples/shopify.toml")["shopify"]
    with pytest.raises(ValueError, match="api_version"):
        plugins.load("shopify", {**table, "api_version": version})


@pytest.mark.parametrize("version", ["2026-01", "2026-04", "2027-10"])
def test_create_accepts_stable_api_versions_from_2026_01(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("SHOPIFY_ACCESS_TOKEN", "shpat_example")
    monkeypatch.setenv("SHOPIFY_WEBHOOK_SECRET", "shpss_example")
    table = plugins.read_config(ROOT / "connectors/examples/shopify.toml")["shopify"]
    connector = plugins.load("shopify", {**table, "api_version": version})
    assert isinstance(connector, ShopifyConnector)
    assert connector.config.api_version == version
