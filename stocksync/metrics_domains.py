"""Metrics per stock domain, with a bounded label set.

Each domain has its own outbox (and so its own ledger lag) and its own frozen SKUs (DESIGN
rules 5 and 6), so an operator must see which domain lags or went back in time. Domains are
operator-made, but a deployment may hold up to a few hundred of them: labelling each would let
the series count grow with the catalogue's layout. ``default`` and the first
:data:`DOMAINS_LABELLED` - 1 other domains this process sees keep their own label; the rest are
summed (events, SKUs) or maxed (seconds) under :data:`OTHER` (a leading ``_`` no domain name
can have, so it never collides with a real domain).

The unlabelled gauges the alerts and dashboards already use stay as totals over every domain
(``stocksync_ledger_lag_events`` summed, ``stocksync_ledger_lag_seconds`` the worst,
``stocksync_regressed_skus`` summed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge

from stocksync.domain.model import DEFAULT_DOMAIN

DOMAINS_LABELLED = 20
OTHER = "_other"


@dataclass
class DomainLabels:
    """Which label a domain's series carries (its name, or OTHER past the limit)."""

    limit: int = DOMAINS_LABELLED
    named: set[str] = field(default_factory=lambda: {DEFAULT_DOMAIN})

    def __call__(self, domain: str) -> str:
        if domain in self.named:
            return domain
        if len(self.named) < self.limit:
            self.named.add(domain)
            return domain
        return OTHER


class DomainGauges:
    """The per-domain lag and frozen-SKU gauges, and the totals kept beside them."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        lag_events_total: Gauge,
        lag_seconds_total: Gauge,
        regressed_total: Gauge,
        limit: int = DOMAINS_LABELLED,
    ) -> None:
        self.label = DomainLabels(limit)
        self.lag_events = Gauge(
            "stocksync_outbox_lag_events",
            "Outbox entries of a stock domain not yet acknowledged by the ledger copy",
            ["domain"],
            registry=registry,
        )
        self.lag_seconds = Gauge(
            "stocksync_outbox_lag_seconds",
            "Age of a stock domain's oldest outbox entry not yet in the ledger (0: caught up)",
            ["domain"],
            registry=registry,
        )
        self.regressed = Gauge(
            "stocksync_domain_regressed_skus",
            "SKUs of a stock domain frozen awaiting a rebuild",
            ["domain"],
            registry=registry,
        )
        self._totals = (lag_events_total, lag_seconds_total, regressed_total)
        self._lag: dict[str, tuple[int, float]] = {}
        self._frozen: dict[str, int] = {}

    def set_lag(self, domain: str, events: int, seconds: float) -> None:
        """A domain's ledger lag as its copy last measured it."""
        self._lag[domain] = (events, seconds)
        label = self.label(domain)
        same = [lag for d, lag in self._lag.items() if self.label(d) == label]
        self.lag_events.labels(label).set(sum(e for e, _ in same))
        self.lag_seconds.labels(label).set(max(s for _, s in same))
        self._totals[0].set(sum(e for e, _ in self._lag.values()))
        self._totals[1].set(max(s for _, s in self._lag.values()))

    def set_regressed(self, domain: str, skus: int) -> None:
        """How many SKUs of a domain are frozen now."""
        self._frozen[domain] = skus
        label = self.label(domain)
        self.regressed.labels(label).set(
            sum(n for d, n in self._frozen.items() if self.label(d) == label)
        )
        self._totals[2].set(sum(self._frozen.values()))
