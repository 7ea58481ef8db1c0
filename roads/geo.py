"""A local flat projection for nearest-node search: a city is small enough for an
equirectangular one."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ridehail.kernel.geo import EARTH_RADIUS_M


class LocalPlane:
    """Metres east and north of a reference latitude (equirectangular): within a city the
    error against the great circle is well under 1%, enough to find the nearest node."""

    def __init__(self, ref_lat: float) -> None:
        self.kx = EARTH_RADIUS_M * float(np.cos(np.radians(ref_lat))) * np.pi / 180.0
        self.ky = EARTH_RADIUS_M * np.pi / 180.0

    def xy(self, lat: ArrayLike, lng: ArrayLike) -> NDArray[np.float64]:
        return np.column_stack([np.asarray(lng, float) * self.kx,
                                np.asarray(lat, float) * self.ky])

    def point(self, lat: float, lng: float) -> tuple[float, float]:
        """`xy` of one position, without numpy's per-call cost."""
        return (lng * self.kx, lat * self.ky)
