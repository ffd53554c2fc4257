"""Every metric the Grafana dashboard and the alert rules read is one the engine exports, with
the labels they use: checked against a live /metrics of the app (workers running) and the
connectors' registry. A renamed metric or a typo in a query fails here, not on a blank panel
or an alert that can never fire."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from connectors.framework.metrics import connector_metrics
from stocksync.config import Settings
from tests.support.api import Seed, hold, post_ok
from tests.support.observability import (
    Exported,
    alert_rules,
    dashboard,
    panel_queries,
    problems,
    selectors,
)

# What the dashboard must show (the operator's questions); propagation and Redis memory per
# position have no metric yet, and the dashboard says so in a note instead of a panel.
WATCHED = {
    "stocksync_reservations_total",
    "stocksync_http_requests_total",
    "stocksync_http_request_seconds_bucket",
    "stocksync_script_seconds_bucket",
    "stocksync_active_reservations",
    "stocksync_expired_holds_total",
    "stocksync_hold_expiry_lag_seconds",
    "stocksync_oversell_risk_total",
    "stocksync_ledger_lag_events",
    "stocksync_ledger_lag_seconds",
    "stocksync_ledger_drift_units",
    "stocksync_regressed_skus",
    "stocksync_worker_restarts_total",
    "stocksync_outbox_dead_groups",
    "stocksync_connector_lag_seconds",
    "stocksync_source_drift_units",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # With the workers, as a deployment runs: their series (restarts per worker, the
    # reaper's gauges) exist from the start.
    return settings.model_copy(update={"run_workers": True})


@pytest.fixture
async def exported(client: httpx.AsyncClient, seed: Seed, sku: str) -> Exported:
    # Traffic, so that labelled families have children whose label names can be read.
    await seed(sku, 1)
    await post_ok(client, "/v1/reservations", hold(f"{sku}-1", sku))
    await post_ok(client, f"/v1/reservations/{sku}-1/confirm")
    sold_out = await client.post("/v1/reservations", json=hold(f"{sku}-2", sku))
    assert sold_out.status_code == 409, sold_out.text
    assert (await client.get("/v1/no-such-route")).status_code == 404
    api = await client.get("/metrics")
    assert api.status_code == 200

    # A connector's registry as `connector run` serves it, after one event of each kind.
    registry = CollectorRegistry()
    connectors = connector_metrics(registry)
    connectors.outcome("square", "applied")
    connectors.observe_lag("square", 0)
    connectors.drift.labels("square").set(0)
    connectors.drift_positions.labels("square").set(0)
    return Exported.parse(api.text, generate_latest(registry).decode())


def test_every_dashboard_query_reads_what_the_engine_exports(exported: Exported) -> None:
    queries = panel_queries(dashboard())
    assert len(queries) >= 20
    found = {
        f"{title}: {problem}" for title, expr in queries for problem in problems(expr, exported)
    }
    assert found == set()


def test_every_alert_reads_what_the_engine_exports(exported: Exported) -> None:
    found = {
        f"{name}: {problem}"
        for name, rule in alert_rules().items()
        for problem in problems(rule["expr"], exported)
    }
    assert found == set()


def test_the_dashboard_shows_what_operators_watch(exported: Exported) -> None:
    read = {name for _, expr in panel_queries(dashboard()) for name in selectors(expr).metrics}
    assert WATCHED - read == set()
    assert WATCHED - set(exported.labels) == set()  # the list itself names real series
