"""The PromQL reader the dashboard and alert checks rely on (tests/support/observability.py):
it must find every metric and label an expression reads, and nothing else, or those checks
would pass on a typo."""

from __future__ import annotations

import pytest

from tests.support.observability import Exported, problems, selectors

EXPOSITION = """\
# HELP shop_requests_total Requests
# TYPE shop_requests_total counter
shop_requests_total{route="/a",status="200"} 3.0
# HELP shop_restarts_total Restarts (no child yet)
# TYPE shop_restarts_total counter
# HELP shop_latency_seconds Latency
# TYPE shop_latency_seconds histogram
shop_latency_seconds_bucket{route="/a",le="0.1"} 1.0
shop_latency_seconds_bucket{route="/a",le="+Inf"} 1.0
shop_latency_seconds_count{route="/a"} 1.0
shop_latency_seconds_sum{route="/a"} 0.05
# HELP shop_lag_seconds Lag
# TYPE shop_lag_seconds gauge
shop_lag_seconds 0.0
"""


def test_selectors_finds_metrics_matchers_and_grouping_labels() -> None:
    found = selectors(
        'sum by (route) (rate(shop_requests_total{status=~"5..", route!="x{y}"}[5m]))'
        " / ignoring (status) group_left sum by (route) (rate(shop_requests_total[1h:1m]))"
        " > 1e3 and on (job) shop_lag_seconds offset 15m"
    )
    assert found.metrics == {"shop_requests_total": {"status", "route"}, "shop_lag_seconds": set()}
    assert found.grouping == {"route", "status", "job"}


def test_selectors_skips_functions_keywords_numbers_and_strings() -> None:
    found = selectors(
        "histogram_quantile(0.99, sum without (instance) (rate(shop_latency_seconds_bucket[5m])))"
        " unless time() - max(shop_lag_seconds) < bool 900 or vector(1)"
        ' and label_replace(shop_lag_seconds, "dst", "$1", "src", "(shop_nope)")'
    )
    assert set(found.metrics) == {"shop_latency_seconds_bucket", "shop_lag_seconds"}
    assert found.grouping == {"instance"}


def test_selectors_refuses_a_selector_without_a_metric_name() -> None:
    with pytest.raises(ValueError, match="without a metric name"):
        selectors('sum({__name__=~"shop_.*"})')


def test_exported_offers_each_type_s_series_even_without_samples() -> None:
    exported = Exported.parse(EXPOSITION)
    assert {"shop_requests_total", "shop_restarts_total", "shop_lag_seconds"} <= set(
        exported.labels
    )
    assert {"shop_latency_seconds_bucket", "shop_latency_seconds_count"} <= set(exported.labels)
    assert exported.labels["shop_requests_total"] == {"route", "status"}
    assert exported.labels["shop_latency_seconds_bucket"] == {"route", "le"}
    assert exported.labels["shop_latency_seconds_count"] == {"route"}
    assert "shop_requests" not in exported.labels  # a counter is read as ..._total


def test_problems_is_empty_for_what_exists() -> None:
    exported = Exported.parse(EXPOSITION)
    expr = (
        "histogram_quantile(0.99, sum by (route, le) (rate(shop_latency_seconds_bucket[5m])))"
        ' + on (instance) sum by (instance) (rate(shop_requests_total{status="200"}[5m]))'
        ' + sum(up{job="x"})'
    )
    assert problems(expr, exported) == []


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(shop_request_total[5m])", "shop_request_total is not exported"),
        ("rate(shop_requests[5m])", "shop_requests is not exported"),
        ("shop_latency_seconds", "shop_latency_seconds is not exported"),
        (
            'rate(shop_requests_total{stauts="500"}[5m])',
            "shop_requests_total has no label 'stauts'",
        ),
        ("sum by (channel) (rate(shop_requests_total[5m]))", "no metric has the label 'channel'"),
        ('up{route="/a"}', "up has no label 'route'"),
        ("vector(1)", "no metric in 'vector(1)'"),
    ],
)
def test_problems_names_what_is_not_exported(expr: str, problem: str) -> None:
    assert problem in problems(expr, Exported.parse(EXPOSITION))
