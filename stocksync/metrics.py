"""Prometheus metrics. Each app gets its own registry so several can live in one process."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stocksync.metrics_domains import DomainGauges

KNOWN_CHANNELS = frozenset({"web", "app", "chat", "pos", "marketplace", "wms", "api"})
# The methods our routes answer; the HTTP parser knows ~35 (PROPFIND, MKCOL, …).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PROPAGATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SCRIPT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


def channel_label(channel: str) -> str:
    """Channels are client-chosen; bound the label set so metrics cannot explode."""
    return channel if channel in KNOWN_CHANNELS else "other"


def method_label(method: str) -> str:
    """Any client may send any method token: bound the label set the same way."""
    return method if method in KNOWN_METHODS else "other"


class BoundChildren(dict[str, Any]):
    """The labelled children of ``metric`` with its leading labels ``bound``, by the last
    label's value, each made once: a hot path indexes a dict instead of calling ``labels()``
    (label checks and a lock) per request. Bounded as the label values are (channels, actions,
    outcome codes: fixed sets)."""

    def __init__(self, metric: Counter | Histogram, *bound: str) -> None:
        super().__init__()
        self.metric = metric
        self.bound = bound

    def __missing__(self, value: str) -> Any:
        child = self.metric.labels(*self.bound, value)
        self[value] = child
        return child


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "stocksync_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "stocksync_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reservations = Counter(
            "stocksync_reservations",
            "Reservation requests by channel and outcome",
            ["channel", "outcome"],
            registry=r,
        )
        self.transitions = Counter(
            "stocksync_transitions",
            "Reservation transitions by action and outcome",
            ["action", "outcome"],
            registry=r,
        )
        self._reservation_outcomes: dict[str, BoundChildren] = {}
        self._transition_outcomes: dict[str, BoundChildren] = {}
        self.stock_changes = Counter(
            "stocksync_stock_changes",
            "Counts and adjustments by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.script_latency = Histogram(
            "stocksync_script_seconds",
            "Lua script round-trip latency",
            ["script"],
            buckets=SCRIPT_BUCKETS,
            registry=r,
        )
        self.active_reservations = Gauge(
            "stocksync_active_reservations",
            "Reservations held, confirmed or ready (as of the last reaper pass)",
            registry=r,
        )
        self.expired_holds = Counter(
            "stocksync_expired_holds",
            "Reservations expired by the background reaper",
            registry=r,
        )
        self.hold_expiry_lag = Gauge(
            "stocksync_hold_expiry_lag_seconds",
            "How late the oldest due reservation was when the reaper expired it",
            registry=r,
        )
        self.returns = Counter(
            "stocksync_returns",
            "Units returned (POST /v1/returns), by disposition: restock, inspect, damaged",
            ["disposition"],
            registry=r,
        )
        self.oversell_risk = Counter(
            "stocksync_oversell_risk",
            "Holds flagged at risk after a sale drove stock negative",
            registry=r,
        )

        self.stock_regressed = Counter(
            "stocksync_stock_regressed",
            "SKUs found with Redis state older than the ledger (writes refused until rebuilt)",
            registry=r,
        )
        self.regressed_skus = Gauge(
            "stocksync_regressed_skus", "SKUs currently frozen awaiting a rebuild", registry=r
        )

        # Ledger copy (outbox stream -> SQL ledger).
        self.ledger_events_written = Counter(
            "stocksync_ledger_events_written",
            "Outbox events committed to the SQL ledger and acknowledged",
            registry=r,
        )
        self.store_batch_size = Histogram(
            "stocksync_store_batch_size",
            "Operations per batch FCALL (group commit); 1 = a request that came alone",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.ledger_batch_size = Histogram(
            "stocksync_ledger_batch_size",
            "Outbox events per ledger transaction",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.ledger_batch_limit = Gauge(
            "stocksync_ledger_batch_limit",
            "Entries the ledger copy asks for per read now (grows with the backlog, shrinks back)",
            registry=r,
        )
        # Sale write-through (group commit of fulfilments into the ledger).
        self.sale_commit_size = Histogram(
            "stocksync_sale_commit_sales",
            "Sales per ledger transaction of the sale write-through (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.sale_commit_seconds = Histogram(
            "stocksync_sale_commit_seconds",
            "Time of one sale write-through transaction, by outcome (ok, failed)",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ledger_errors = Counter(
            "stocksync_ledger_errors",
            "Ledger copy passes that failed (SQL or Redis) and were retried",
            registry=r,
        )
        self.ledger_lag_events = Gauge(
            "stocksync_ledger_lag_events",
            "Outbox entries not yet acknowledged by the ledger copy",
            registry=r,
        )
        self.ledger_lag_seconds = Gauge(
            "stocksync_ledger_lag_seconds",
            "Age of the oldest outbox entry not yet in the ledger (0 when caught up)",
            registry=r,
        )

        self.ledger_drift_units = Gauge(
            "stocksync_ledger_drift_units",
            "Units by which Redis and the fold of the ledger disagree (last periodic audit)",
            registry=r,
        )
        self.ledger_drift_positions = Gauge(
            "stocksync_ledger_drift_positions", "Positions drifting at the last audit", registry=r
        )
        # Supervision (the workers and the bundled Redis restart after a crash).
        self.worker_restarts = Counter(
            "stocksync_worker_restarts",
            "Background workers restarted after an unexpected failure",
            ["worker"],
            registry=r,
        )
        self.embedded_redis_restarts = Counter(
            "stocksync_embedded_redis_restarts",
            "Restarts of the bundled redis-server after it died (serve on the embedded default)",
            registry=r,
        )
        self.outbox_dead_groups = Gauge(
            "stocksync_outbox_dead_groups",
            "Outbox consumer groups idle past OUTBOX_GROUP_IDLE_SECONDS, no longer holding back "
            "the trim",
            registry=r,
        )
        # Propagation (DESIGN promise 3): from the change's Redis server time to a channel.
        self.propagation = Histogram(
            "stocksync_propagation_seconds",
            "From a change's server time (its outbox entry) to a channel having it: a webhook "
            "endpoint answered 2xx (sink=webhook), an SSE event was sent (sse), a Shopify push "
            "was accepted (shopify)",
            ["sink"],
            buckets=PROPAGATION_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "stocksync_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, failed: retried later, dead)",
            ["outcome"],
            registry=r,
        )
        self.webhook_messages_queued = Counter(
            "stocksync_webhook_messages_queued",
            "Webhook messages queued from the outbox (one per subscription and message)",
            registry=r,
        )
        # Lag and frozen SKUs per stock domain (bounded labels), the totals above kept too.
        self.domains = DomainGauges(
            r,
            lag_events_total=self.ledger_lag_events,
            lag_seconds_total=self.ledger_lag_seconds,
            regressed_total=self.regressed_skus,
        )

    def reservation_outcomes(self, channel: str) -> BoundChildren:
        """``reservations`` children of a channel label (see :func:`channel_label`)."""
        found = self._reservation_outcomes.get(channel)
        if found is None:
            found = self._reservation_outcomes[channel] = BoundChildren(self.reservations, channel)
        return found

    def transition_outcomes(self, action: str) -> BoundChildren:
        """``transitions`` children of one action."""
        found = self._transition_outcomes.get(action)
        if found is None:
            found = self._transition_outcomes[action] = BoundChildren(self.transitions, action)
        return found

    def observe_script(self, name: str, seconds: float) -> None:
        self.script_latency.labels(name).observe(seconds)

    def observe_batch(self, size: int) -> None:
        self.store_batch_size.observe(size)

    def observe_sale_commit(self, sales: int, seconds: float, committed: bool) -> None:
        self.sale_commit_size.observe(sales)
        self.sale_commit_seconds.labels("ok" if committed else "failed").observe(seconds)
