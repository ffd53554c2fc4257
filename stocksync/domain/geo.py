"""Great-circle distance, for "nearest store first"."""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

EARTH_RADIUS_KM = 6371.0088
# Redis GEO (Web Mercator) indexes latitudes within ±85.05112878 and refuses the rest, so a
# location or a search point beyond it could never be placed on the map of stores.
GEO_LAT_MAX = 85.05112878
GEO_LON_MAX = 180.0


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in kilometres."""
    dlat = radians(lat2 - lat1)
    dlon = radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(sqrt(a))


def parse_point(text: str) -> tuple[float, float]:
    """``"lat,lon"`` to a pair; ValueError when malformed or out of range."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError("expected 'lat,lon'")
    lat, lon = float(parts[0]), float(parts[1])
    if not (abs(lat) <= GEO_LAT_MAX and abs(lon) <= GEO_LON_MAX):
        raise ValueError(f"lat must be within ±{GEO_LAT_MAX} and lon within ±{GEO_LON_MAX:g}")
    return lat, lon
