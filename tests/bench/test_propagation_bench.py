"""Smoke run of the ``propagation`` section at a tiny size: the receiver got change-feed messages
for every reservation, the SSE client its events, and the rows exist (no timing asserted)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from bench.harness.config import QUICK
from bench.scenarios import propagation


def test_propagation_section_times_the_feed_and_sse_end_to_end(tmp_path: Path) -> None:
    profile = dataclasses.replace(QUICK, propagation_rate=40, propagation_seconds=1.0)
    rows = propagation.run(profile, tmp_path, lambda _: None)
    by_name = {row.scenario: row for row in rows}
    feed = by_name["webhook: receiver, now - data.at (end to end)"]
    assert feed.extra["reservations"] == 40
    assert feed.errors == 0
    by_type = feed.extra["by_type"]
    assert isinstance(by_type, dict)
    assert by_type["reservation.held"] == 40  # one per reservation, none lost
    assert by_type["availability.changed"] >= 1
    sse = by_name["sse: client, now - at (end to end)"]
    assert sse.extra["received"] == 40
    for sink in ("webhook", "sse"):
        row = by_name[f"{sink}: stocksync_propagation_seconds (bucket-interpolated)"]
        assert (
            row.extra["received"]
            == by_name[feed.scenario if sink == "webhook" else sse.scenario].extra["received"]
        )
        assert not math.isnan(row.p50_ms)


def test_bucket_quantile_interpolates_within_the_bucket() -> None:
    buckets = [(0.01, 0.0), (0.1, 10.0), (1.0, 20.0), (math.inf, 20.0)]
    assert math.isclose(propagation.bucket_quantile(buckets, 0.5), 0.1)
    assert math.isclose(propagation.bucket_quantile(buckets, 0.25), 0.01 + 0.09 * 0.5)
    assert math.isclose(propagation.bucket_quantile(buckets, 0.75), 0.1 + 0.9 * 0.5)
    assert math.isnan(propagation.bucket_quantile([(math.inf, 0.0)], 0.5))
