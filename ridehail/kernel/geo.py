"""One great-circle distance for the whole project (the compiled index kernels use the same
formula over arrays; `haversine_many` is it for numpy arrays)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres between two WGS84 points."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    s_phi = math.sin((p2 - p1) * 0.5)
    s_lam = math.sin(math.radians(lng2 - lng1) * 0.5)
    a = s_phi * s_phi + math.cos(p1) * math.cos(p2) * s_lam * s_lam
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def haversine_many(lat1: ArrayLike, lng1: ArrayLike, lat2: ArrayLike,
                   lng2: ArrayLike) -> NDArray[np.float64]:
    """`haversine_m` elementwise over arrays (metres)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    s_phi = np.sin((p2 - p1) * 0.5)
    s_lam = np.sin(np.radians(np.subtract(lng2, lng1)) * 0.5)
    a = s_phi * s_phi + np.cos(p1) * np.cos(p2) * s_lam * s_lam
    out: NDArray[np.float64] = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(1.0, a)))
    return out
