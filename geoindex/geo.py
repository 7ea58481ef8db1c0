"""Great-circle geometry and input validation shared by both backends."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

# The one great-circle distance (the compiled kernels use the same formula over arrays).
from ridehail.kernel.geo import EARTH_RADIUS_M as EARTH_RADIUS_M
from ridehail.kernel.geo import haversine_m as haversine_m

DEG = math.pi / 180.0


def check_number(value: Any, name: str) -> float:
    """A finite real number, or ValueError naming the field."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"{name}: expected a number, got {type(value).__name__}")
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"{name}: must be finite, got {f!r}")
    return f


def check_latlng(lat: Any, lng: Any) -> tuple[float, float]:
    la = check_number(lat, "lat")
    ln = check_number(lng, "lng")
    if not -90.0 <= la <= 90.0:
        raise ValueError(f"lat: must be in [-90, 90], got {la!r}")
    if not -180.0 <= ln <= 180.0:
        raise ValueError(f"lng: must be in [-180, 180], got {ln!r}")
    return la, ln


def check_driver_id(driver_id: Any) -> str:
    if not isinstance(driver_id, str) or not driver_id:
        raise ValueError(f"driver_id: must be a non-empty string, got {driver_id!r}")
    return driver_id


def check_k(k: Any) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: must be an integer >= 1, got {k!r}")
    return int(k)


def check_radius(radius_m: Any) -> float:
    r = check_number(radius_m, "radius_m")
    if r < 0.0:
        raise ValueError(f"radius_m: must be >= 0, got {r!r}")
    return r


def as_float_array(values: Any, name: str, n: int | None = None) -> NDArray[np.float64]:
    """A 1-D float64 array (NaN where a value is not a number), checking the length."""
    raw = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if raw.dtype.kind in "iuf":
        arr = raw.astype(np.float64, copy=False)
    else:  # strings, None, bools and other objects are not coordinates: NaN, rejected later
        arr = np.array([_to_float_or_nan(v) for v in raw.ravel().tolist()], dtype=np.float64)
        arr = arr.reshape(raw.shape)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: length {arr.shape[0]} does not match driver_ids ({n})")
    return arr


def _to_float_or_nan(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
        return math.nan
    return float(v)


def check_latlng_arrays(lats: Any, lngs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validated query arrays for batch queries; ValueError naming the field."""
    la = as_float_array(lats, "lats")
    ln = as_float_array(lngs, "lngs", la.shape[0])
    if not np.isfinite(la).all():
        raise ValueError("lats: must be finite")
    if not np.isfinite(ln).all():
        raise ValueError("lngs: must be finite")
    if ((la < -90.0) | (la > 90.0)).any():
        raise ValueError("lats: must be in [-90, 90]")
    if ((ln < -180.0) | (ln > 180.0)).any():
        raise ValueError("lngs: must be in [-180, 180]")
    return np.ascontiguousarray(la), np.ascontiguousarray(ln)


def to_xyz(lat: float, lng: float) -> tuple[float, float, float]:
    p = math.radians(lat)
    la = math.radians(lng)
    c = math.cos(p)
    return c * math.cos(la), c * math.sin(la), math.sin(p)
