"""The simulated fleet: where drivers are, where they are going, and what they decide.

Positions live in numpy arrays, one slot per driver, as a leg (from, to, departure, arrival);
a driver's position at time t is the straight-line interpolation along its current leg, so a
4-second location tick for 10,000 drivers is a few vector operations. A leg's time and road
distance come from the run's travel model (simulator/travel.py: the learned model by hour of
the week, times a random factor with the model's own spread, so dispatch's predictions miss as
they would in a city; without one, the straight line x 1.3 at the hour's speed). The driver's
choices (accept an offer, go online, end a shift, reposition when idle) are drawn from the run's
one random generator, in event order, so a seed replays the same decisions.

In a city with a road map (a `roads.Router`), a leg is the routed path instead: its time and
metres are the route's (free-flow speeds by road class), and the driver moves along the path's
vertices at the route's own pace. Those legs are kept aside (`paths`), and only they are
interpolated one by one over the straight-line result, so the straight-line case costs what it
did. A leg whose end is off the road network takes the travel model's time, in a straight line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from dispatch.eta import EtaModel
from ridehail.kernel.geo import haversine_m
from roads import OffNetwork, Route, Router

from .city import City
from .demand import TripRequest
from .travel import HourlySpeed

REPOSITION_CHOICES = ("stay", "random", "demand", "rebalance")
PLACEMENT_CHOICES = ("demand", "uniform")


class Phase(IntEnum):
    """The simulator's view of a driver (the engine keeps its own, authoritative one)."""

    offline = 0
    idle = 1
    offered = 2
    to_pickup = 3
    waiting = 4  # at the pickup, rider boarding
    on_trip = 5


BUSY = (Phase.to_pickup, Phase.waiting, Phase.on_trip)


def busy(phase: NDArray[np.int8]) -> NDArray[np.bool_]:
    """Which drivers are `BUSY`: the phases from to_pickup on (a comparison, not a set test:
    the tick asks twice for 10,000 drivers)."""
    return phase >= Phase.to_pickup


@dataclass
class FleetConfig:
    drivers: int
    accept_prob: float = 0.9
    reposition: str = "stay"
    placement: str = "demand"
    detour_factor: float = 1.3
    start_hour: float = 8.0
    online_at_start: float = 0.8  # the rest log on during the first half of the run
    shift_median_s: float = 6 * 3600.0
    reposition_every_s: float = 300.0
    reposition_radius_m: float = 2500.0
    response_delay_s: tuple[float, float] = (2.0, 8.0)  # an offer is answered after this long

    def __post_init__(self) -> None:
        if self.drivers < 0:
            raise ValueError(f"--drivers: must be >= 0, got {self.drivers}")
        if not 0.0 <= self.accept_prob <= 1.0:
            raise ValueError(f"--accept-prob: must be in [0, 1], got {self.accept_prob}")
        if self.reposition not in REPOSITION_CHOICES:
            raise ValueError(f"--reposition: must be one of {REPOSITION_CHOICES}")
        if self.placement not in PLACEMENT_CHOICES:
            raise ValueError(f"placement: must be one of {PLACEMENT_CHOICES}")
        if self.detour_factor < 1.0:
            raise ValueError("detour_factor: must be >= 1")


class Fleet:
    def __init__(self, config: FleetConfig, city: City, rng: np.random.Generator,
                 ids: list[str] | None = None, travel: EtaModel | None = None,
                 spread: float = 0.0, router: Router | None = None) -> None:
        n = config.drivers
        self.config = config
        # `when` is simulated seconds (simulator/travel.py's SimTime adds the real start).
        self.travel = travel or HourlySpeed(config.start_hour, config.detour_factor)
        self.spread = spread  # sigma of log(actual / predicted) leg time
        self.city = city
        self.rng = rng
        self.ids = ids if ids is not None else [f"d{i + 1}" for i in range(n)]
        if len(self.ids) != n:
            raise ValueError("ids: one per driver")
        self.slot = {d: i for i, d in enumerate(self.ids)}
        self.id_array = np.array(self.ids, dtype=object)  # the same strings, picked by slot
        z = np.zeros(n)
        self.lat0, self.lng0, self.lat1, self.lng1 = z.copy(), z.copy(), z.copy(), z.copy()
        self.t0, self.t1 = z.copy(), z.copy()
        self.leg_m = z.copy()  # road metres of the current leg
        self.leg_loaded = np.zeros(n, bool)  # a rider is aboard on this leg
        self.phase = np.full(n, int(Phase.offline), np.int8)
        self.trip: list[str | None] = [None] * n
        self.empty_m = 0.0
        self.loaded_m = 0.0
        self.online_at = z.copy()
        self.offline_at = z.copy()
        self.router = router
        self.paths: dict[int, Route] = {}  # the routed legs not yet over, by slot
        self.routed_legs = 0
        self.off_network_legs = 0  # legs driven in a straight line: an end was off the roads

    # --- setup -----------------------------------------------------------------------------

    def place(self, requests: list[TripRequest]) -> None:
        """Initial positions, by demand (a recorded pickup each, jittered) or uniform, and
        shifts: most drivers are online at the start, the others log on during the run."""
        n = len(self.ids)
        if n == 0:
            return
        if self.config.placement == "demand" and requests:
            pick = self.rng.integers(0, len(requests), n)
            lat = np.array([requests[k].pickup_lat for k in pick.tolist()])
            lng = np.array([requests[k].pickup_lng for k in pick.tolist()])
            # ~300 m of jitter, so drivers do not all sit on the busiest corner
            lat = lat + self.rng.normal(0, 0.0027, n)
            lng = lng + self.rng.normal(0, 0.0035, n)
            outside = ~self.city.contains_many(lat, lng)
            if outside.any():
                pts = self.city.sample_points(int(outside.sum()), self.rng)
                lat[outside], lng[outside] = pts[:, 0], pts[:, 1]
        else:
            pts = self.city.sample_points(n, self.rng)
            lat, lng = pts[:, 0].copy(), pts[:, 1].copy()
        self.lat0[:], self.lng0[:], self.lat1[:], self.lng1[:] = lat, lng, lat, lng
        late = self.rng.random(n) >= self.config.online_at_start
        self.online_at[:] = np.where(late, self.rng.uniform(0, 1800.0, n), 0.0)
        shift = self.config.shift_median_s * np.exp(self.rng.normal(0, 0.35, n))
        self.offline_at[:] = self.online_at + shift

    # --- movement --------------------------------------------------------------------------

    def position(self, i: int, t: float) -> tuple[float, float]:
        if self.paths:
            route = self.paths.get(i)
            if route is not None:
                return route.position_at(t - float(self.t0[i]))
        t0, t1 = self.t0[i], self.t1[i]
        f = 1.0 if t >= t1 or t1 <= t0 else max(0.0, (t - t0) / (t1 - t0))
        return (float(self.lat0[i] + (self.lat1[i] - self.lat0[i]) * f),
                float(self.lng0[i] + (self.lng1[i] - self.lng0[i]) * f))

    def positions(self, t: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        span = self.t1 - self.t0
        f = np.clip(np.divide(t - self.t0, span, out=np.ones_like(span), where=span > 0), 0, 1)
        lat = self.lat0 + (self.lat1 - self.lat0) * f
        lng = self.lng0 + (self.lng1 - self.lng0) * f
        if self.paths:
            self._follow_paths(t, lat, lng)
        return lat, lng

    def _follow_paths(self, t: float, lat: NDArray[np.float64],
                      lng: NDArray[np.float64]) -> None:
        """Routed legs: the position along the path, over the chord's. A leg that is over
        leaves `paths` (its chord's end is the path's end)."""
        over = []
        for i, route in self.paths.items():
            t0 = float(self.t0[i])
            if t >= float(self.t1[i]):
                over.append(i)
                continue
            lat[i], lng[i] = route.position_at(t - t0)
        for i in over:
            del self.paths[i]

    def _close_leg(self, i: int, t: float) -> None:
        """Book the part of the current leg driven so far (loaded or empty)."""
        t0, t1 = self.t0[i], self.t1[i]
        route = self.paths.pop(i, None) if self.paths else None
        if t1 > t0 and self.leg_m[i] > 0:
            if route is not None:
                done = float(np.interp(t - t0, route.elapsed_s, route.along_m))
            else:
                done = self.leg_m[i] * min(1.0, max(0.0, (t - t0) / (t1 - t0)))
            if self.leg_loaded[i]:
                self.loaded_m += done
            else:
                self.empty_m += done
        self.leg_m[i] = 0.0

    def stop(self, i: int, t: float) -> None:
        lat, lng = self.position(i, t)
        self._close_leg(i, t)
        self.lat0[i] = self.lat1[i] = lat
        self.lng0[i] = self.lng1[i] = lng
        self.t0[i] = self.t1[i] = t

    def go_to(self, i: int, lat: float, lng: float, t: float, loaded: bool = False) -> float:
        """Start a leg from where the driver is now; returns the arrival time."""
        here = self.position(i, t)
        self._close_leg(i, t)
        route = self._route(here, lat, lng)
        if route is not None:
            road_m, seconds = route.metres, route.seconds
            if seconds > 0:
                self.paths[i] = route
        else:
            seconds, road_m = self.travel.travel(here[0], here[1], lat, lng, t)
            if self.spread > 0:
                seconds *= math.exp(float(self.rng.normal(0.0, self.spread)))
        self.lat0[i], self.lng0[i] = here
        self.lat1[i], self.lng1[i] = lat, lng
        self.t0[i] = t
        self.t1[i] = t + seconds
        self.leg_m[i] = road_m
        self.leg_loaded[i] = loaded
        return float(self.t1[i])

    def _route(self, here: tuple[float, float], lat: float, lng: float) -> Route | None:
        if self.router is None:
            return None
        try:
            route = self.router.route(here[0], here[1], lat, lng)
        except OffNetwork:
            self.off_network_legs += 1
            return None
        self.routed_legs += 1
        return route

    def road_figures(self) -> dict[str, int]:
        """For the report: how many legs followed the roads, how many could not."""
        if self.router is None:
            return {}
        return {"routed_legs": self.routed_legs, "off_network_legs": self.off_network_legs}

    def finish_legs(self, t: float) -> None:
        """Book every open leg at the end of the run (for the km figures)."""
        for i in np.flatnonzero(self.leg_m > 0).tolist():
            self._close_leg(i, t)

    # --- decisions -------------------------------------------------------------------------

    def accepts(self) -> bool:
        return bool(self.rng.random() < self.config.accept_prob)

    def response_delay(self) -> float:
        lo, hi = self.config.response_delay_s
        return float(self.rng.uniform(lo, hi))

    def reposition_target(self, i: int, t: float, upcoming: list[TripRequest]
                          ) -> tuple[float, float] | None:
        """Where an idle driver heads: nowhere (stay), a random nearby point, the nearest of a
        few pickups expected soon (demand: the replayed requests, a perfect forecast), or the
        nearest of a few recent requests that found no driver (rebalance: demand the fleet
        failed to serve predicts where it is short, with no look into the future; after
        Alonso-Mora et al., PNAS 2017). `upcoming` holds those requests for the mode."""
        mode = self.config.reposition
        if mode == "stay" or (mode == "rebalance" and not upcoming):
            return None
        lat, lng = self.position(i, t)
        if mode in ("demand", "rebalance") and upcoming:
            picks = self.rng.integers(0, len(upcoming), 5).tolist()
            best = min((upcoming[k] for k in picks),
                       key=lambda r: haversine_m(lat, lng, r.pickup_lat, r.pickup_lng))
            return best.pickup_lat, best.pickup_lng
        r = self.config.reposition_radius_m * math.sqrt(float(self.rng.random()))
        a = float(self.rng.uniform(0, 2 * math.pi))
        tlat = lat + r * math.cos(a) / 111_320.0
        tlng = lng + r * math.sin(a) / (111_320.0 * max(0.1, math.cos(math.radians(lat))))
        return (tlat, tlng) if self.city.contains(tlat, tlng) else None
