"""Latency summaries (percentiles by the nearest-rank method)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in milliseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of_seconds(cls, samples: Sequence[float]) -> Latency:
        ordered = sorted(samples)
        ms = [percentile(ordered, q) * 1000 for q in (50, 90, 99, 100)]
        return cls(len(ordered), *ms)


def merged_percentile(runs: Sequence[tuple[int, Sequence[float]]], q: float) -> float:
    """Percentile ``q`` of several runs pooled, each run given as (its count, its quantiles).

    A run's quantiles must be evenly spaced (e.g. at 0.05 %, 0.15 %, ... 99.95 %); each then
    stands for count / len(quantiles) samples of the pooled distribution.
    """
    points = sorted((v, n / len(qs)) for n, qs in runs if n and qs for v in qs)
    if not points:
        return math.nan
    target = q / 100 * sum(w for _, w in points)
    seen = 0.0
    for value, weight in points:
        seen += weight
        if seen >= target * (1 - 1e-12):
            return value
    return points[-1][0]
