"""Connector metrics, registered once per Prometheus registry (the API's, or a runner's)."""

from __future__ import annotations

import time
from typing import Any
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stocksync.metrics import PROPAGATION_BUCKETS

OUTCOMES = ("applied", "stale", "duplicate", "dead_letter", "retried", "failed")


class ConnectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "stocksync_connector_events",
            "Source events by connector and outcome (applied, stale, duplicate, dead_letter, "
            "retried, failed)",
            ["connector", "outcome"],
            registry=registry,
        )
        self.lag = Gauge(
            "stocksync_connector_lag_seconds",
            "Age of the newest source event a connector applied, when it applied it",
            ["connector"],
            registry=registry,
        )
        self.last_success = Gauge(
            "stocksync_connector_last_success_timestamp_seconds",
            "Unix time of the connector's last successful apply or push",
            ["connector"],
            registry=registry,
        )
        self.drift = Gauge(
            "stocksync_source_drift_units",
            "Sum over positions of |source count - engine count| at the last drift check",
            ["connector"],
            registry=registry,
        )
        self.drift_positions = Gauge(
            "stocksync_source_drift_positions",
            "Positions whose source count differs from the engine's at the last drift check",
            ["connector"],
            registry=registry,
        )

        self.propagation = _propagation(registry)

    def observe_propagation(self, sink: str, at_ms: int | None) -> None:
        """A change (server time ``at_ms``) reached channel ``sink`` now."""
        if at_ms is not None:
            self.propagation.labels(sink).observe(max(0.0, time.time() - at_ms / 1000))

    def outcome(self, connector: str, outcome: str, n: int = 1) -> None:
        self.events.labels(connector, outcome).inc(n)
        if outcome in ("applied", "stale", "duplicate"):
            self.last_success.labels(connector).set(time.time())

    def observe_lag(self, connector: str, occurred_at_ms: int | None) -> None:
        if occurred_at_ms is not None:
            self.lag.labels(connector).set(max(0.0, time.time() - occurred_at_ms / 1000))


_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, ConnectorMetrics] = WeakKeyDictionary()


def connector_metrics(registry: CollectorRegistry) -> ConnectorMetrics:
    """The connector metrics of ``registry`` (created on first use: names register once)."""
    metrics = _BY_REGISTRY.get(registry)
    if metrics is None:
        metrics = _BY_REGISTRY[registry] = ConnectorMetrics(registry)
    return metrics


def _propagation(registry: CollectorRegistry) -> Any:
    """``stocksync_propagation_seconds``: the engine's own metrics define it too, and when a
    connector counts into the API's registry the histogram is already there (one per name)."""
    try:
        return Histogram(
            "stocksync_propagation_seconds",
            "From a change's server time (its outbox entry) to a channel having it",
            ["sink"],
            buckets=PROPAGATION_BUCKETS,
            registry=registry,
        )
    except ValueError:  # registered by stocksync.metrics.Metrics on this registry
        return registry._names_to_collectors["stocksync_propagation_seconds"]
