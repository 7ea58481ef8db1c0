"""Pickup ETA models. Dispatch ranks candidates through this interface so a road router can
replace the straight-line model without touching dispatch."""

from __future__ import annotations

from typing import Protocol


class EtaModel(Protocol):
    def pickup_eta_s(self, distance_m: float, from_lat: float, from_lng: float,
                     to_lat: float, to_lng: float) -> float:
        ...


class StraightLineEta:
    """Great-circle distance x a detour factor, at an average urban speed (8 m/s ~ 29 km/h)."""

    def __init__(self, detour_factor: float = 1.3, speed_mps: float = 8.0) -> None:
        if detour_factor < 1 or speed_mps <= 0:
            raise ValueError("detour_factor must be >= 1 and speed_mps > 0")
        self.detour_factor = detour_factor
        self.speed_mps = speed_mps

    def pickup_eta_s(self, distance_m: float, from_lat: float = 0.0, from_lng: float = 0.0,
                     to_lat: float = 0.0, to_lng: float = 0.0) -> float:
        return distance_m * self.detour_factor / self.speed_mps
