"""Distances and point parsing."""

from __future__ import annotations

import pytest

from stocksync.domain.geo import distance_km, parse_point


def test_distance_km_berlin_to_potsdam() -> None:
    assert distance_km(52.5200, 13.4050, 52.3906, 13.0645) == pytest.approx(27.0, abs=1.0)


def test_distance_km_is_zero_for_the_same_point() -> None:
    assert distance_km(52.5, 13.4, 52.5, 13.4) == 0


@pytest.mark.parametrize("text", ["52.5", "a,b", "91,0", "89,0", "0,181", "1,2,3"])
def test_parse_point_refuses_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match=r".+"):
        parse_point(text)


def test_parse_point_reads_lat_lon() -> None:
    assert parse_point("52.52,13.40") == (52.52, 13.40)
