"""One great-circle distance for the whole project (the compiled index kernels use the same
formula over arrays)."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres between two WGS84 points."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    s_phi = math.sin((p2 - p1) * 0.5)
    s_lam = math.sin(math.radians(lng2 - lng1) * 0.5)
    a = s_phi * s_phi + math.cos(p1) * math.cos(p2) * s_lam * s_lam
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))
