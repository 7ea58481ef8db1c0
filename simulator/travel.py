"""The simulation's travel times: which `EtaModel` (dispatch/eta.py) moves the fleet and feeds
dispatch, and what simulated time means to it.

The simulated clock starts at 0; a model that reads the local hour gets the run's start as a
real time: a Wednesday (2016-01-13, inside the samples' month) at `start_hour` in the model's
time zone, plus the simulated seconds (`SimTime`). Without a learned model the fleet drives the
straight line x 1.3 at the speed of the hour of day (`HourlySpeed`), and dispatch ranks with
its own straight line, as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dispatch.eta import EtaModel
from dispatch.learned_eta import SHIPPED, load
from ridehail.kernel.geo import haversine_m

STRAIGHT_LINE = "straight-line"
START_DAY = (2016, 1, 13)
# Mean door-to-door speed by hour of day (m/s), Manhattan-like: slow at the peaks, fast at night.
SPEED_BY_HOUR_MPS = (
    9.5, 10.0, 10.5, 10.5, 10.0, 9.0, 7.5, 6.0, 5.5, 5.5, 6.0, 6.0,
    6.0, 6.0, 5.8, 5.5, 5.2, 5.0, 5.2, 6.0, 6.8, 7.5, 8.2, 9.0,
)


class HourlySpeed:
    """Straight line x a detour factor at the hour's speed; `when` is simulated seconds."""

    def __init__(self, start_hour: float, detour_factor: float = 1.3) -> None:
        self.start_hour = start_hour
        self.detour_factor = detour_factor

    def speed_mps(self, when: float) -> float:
        return SPEED_BY_HOUR_MPS[int((self.start_hour + when / 3600.0) % 24)]

    def travel(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float,
               when: float) -> tuple[float, float]:
        road_m = haversine_m(from_lat, from_lng, to_lat, to_lng) * self.detour_factor
        return road_m / self.speed_mps(when), road_m

    def pickup_etas(self, from_lats: Sequence[float], from_lngs: Sequence[float],
                    to_lat: float, to_lng: float, when: float) -> list[float]:
        return [self.travel(a, b, to_lat, to_lng, when)[0]
                for a, b in zip(from_lats, from_lngs, strict=True)]


class SimTime:
    """A model that reads real time, asked in simulated seconds: adds the run's start."""

    def __init__(self, model: EtaModel, start_utc_s: float) -> None:
        self.model = model
        self.start_utc_s = start_utc_s

    def travel(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float,
               when: float) -> tuple[float, float]:
        return self.model.travel(from_lat, from_lng, to_lat, to_lng, self.start_utc_s + when)

    def pickup_etas(self, from_lats: Sequence[float], from_lngs: Sequence[float],
                    to_lat: float, to_lng: float, when: float) -> list[float]:
        return self.model.pickup_etas(from_lats, from_lngs, to_lat, to_lng,
                                      self.start_utc_s + when)


def run_start_utc_s(timezone: ZoneInfo, start_hour: float) -> float:
    local = datetime(*START_DAY, tzinfo=timezone) + timedelta(hours=start_hour)
    return local.timestamp()


def travel_model(choice: str | None, city_name: str, start_hour: float
                 ) -> tuple[EtaModel | None, float]:
    """(the model dispatch and the fleet share, or None for the old straight lines; the spread
    of log(actual / predicted) the fleet's drives get around it). `choice`: a model file,
    "straight-line", or None: the shipped model of the city if there is one."""
    if choice == STRAIGHT_LINE:
        return None, 0.0
    path = Path(choice) if choice else SHIPPED.get(city_name)
    if path is None:
        return None, 0.0
    model = load(path)
    sigma = model.residual_sigma if math.isfinite(model.residual_sigma) else 0.0
    return SimTime(model, run_start_utc_s(model.timezone, start_hour)), sigma
