"""Travel-time models: how long a drive takes and how far it goes on the road.

One object answers all three questions the engine asks, so a learned model or a road router
replaces the straight line everywhere at once:

- `pickup_etas`: seconds for each of many drivers to reach one pickup (dispatch's ranking of
  its candidates, nearby's `eta_s`, offers), in one call so a model predicts them as a batch;
- `travel`: (seconds, road metres) of one drive (the upfront fare's duration and distance, the
  simulator's legs).

`when` is the departure time in Unix seconds (UTC); a model that knows the city's traffic reads
the local hour from it, the straight line ignores it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from ridehail.kernel.geo import haversine_m


class EtaModel(Protocol):
    def travel(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float,
               when: float) -> tuple[float, float]:
        """(seconds, road metres) of driving from -> to, leaving at `when`."""
        ...

    def pickup_etas(self, from_lats: Sequence[float], from_lngs: Sequence[float],
                    to_lat: float, to_lng: float, when: float) -> list[float]:
        """Seconds for a driver at each (from_lats[i], from_lngs[i]) to reach (to_lat, to_lng),
        leaving at `when`; one entry per driver, in order."""
        ...


class StraightLineEta:
    """Great-circle distance x a detour factor, at an average urban speed (8 m/s ~ 29 km/h),
    whatever the hour: the fallback when no learned model or router is configured."""

    def __init__(self, detour_factor: float = 1.3, speed_mps: float = 8.0) -> None:
        if not (detour_factor >= 1 and speed_mps > 0 and math.isfinite(speed_mps)):
            raise ValueError("detour_factor must be >= 1 and speed_mps > 0")
        self.detour_factor = detour_factor
        self.speed_mps = speed_mps

    def travel(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float,
               when: float = 0.0) -> tuple[float, float]:
        road_m = haversine_m(from_lat, from_lng, to_lat, to_lng) * self.detour_factor
        return road_m / self.speed_mps, road_m

    def pickup_etas(self, from_lats: Sequence[float], from_lngs: Sequence[float],
                    to_lat: float, to_lng: float, when: float = 0.0) -> list[float]:
        k = self.detour_factor / self.speed_mps
        return [haversine_m(a, b, to_lat, to_lng) * k
                for a, b in zip(from_lats, from_lngs, strict=True)]
