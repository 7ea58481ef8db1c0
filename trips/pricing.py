"""How a trip is priced, in one place: the upfront quote at request time and the fare at
completion. The tariff arithmetic itself lives in `trips/fares.py`.

The fare rule (after Uber's upfront pricing: the quoted price holds unless the route changed
materially), with Q the upfront quote (surge locked in), M the metered fare of the driver's
trace, and the quote's and the meter's distance and duration:

- "quote": the rider pays Q. This is the rule unless one of the two below applies.
- "metered_longer": M > Q x (1 + tolerance) AND (the metered distance > the quote's x
  (1 + margin) OR the metered duration > the quote's x (1 + margin)): the route changed
  materially and cost more. The rider pays M, capped at Q x (1 + cap) ("metered_capped" when
  the cap bit).
- "metered_shorter": M < Q AND the metered distance < the quote's x (1 - margin): the ride
  ended materially short of the destination. The rider pays M.

The meter's trace takes the driver's points in arrival order and drops any point older than
the one before it (the ingest refuses those already: `dispatch.locations.ts_refusal`), and
segments faster than the tariff's `max_speed_mps` carry no distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

import numpy as np
from numba import njit
from numpy.typing import NDArray

from .fares import FareBreakdown, Tariff, estimate_fare, final_fare
from .model import Trip
from .money import above, below, ratio, round_ratio_half_up

Point = tuple[float, float, float]  # (ts, lat, lng)
FareRule = Literal["quote", "metered_longer", "metered_capped", "metered_shorter"]


@dataclass(frozen=True)
class UpfrontPolicy:
    """The thresholds of the fare rule (fractions: 0.25 = 25 %)."""

    tolerance: Decimal = Decimal("0.10")  # how far M may exceed Q before the quote is in doubt
    margin: Decimal = Decimal("0.25")  # a material change of distance or duration
    cap: Decimal = Decimal("0.50")  # the most a longer route adds to the quote

    def __post_init__(self) -> None:
        for name in ("tolerance", "margin", "cap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0")
        if self.margin >= 1:
            raise ValueError("margin: must be < 1")


@dataclass(frozen=True)
class Fare:
    """What the rider pays (`total`), the rule that decided it, and both prices it chose from."""

    total: int
    rule: FareRule
    quoted: FareBreakdown
    metered: FareBreakdown


Route = tuple[float, float]  # (seconds, road metres), as `dispatch.eta.EtaModel.travel` gives


def quote(tariff: Tariff, pickup: tuple[float, float], dropoff: tuple[float, float],
          surge: Decimal, route: Route | None = None) -> FareBreakdown:
    """The upfront estimate a rider sees, with the surge locked in: priced on the route's
    duration and distance (the engine's travel-time model), else on the tariff's straight
    line."""
    if route is None:
        return estimate_fare(tariff, pickup, dropoff, surge=surge)
    return estimate_fare(tariff, pickup, dropoff, route_duration_s=route[0],
                         route_distance_m=route[1], surge=surge)


def metered_trace(trip: Trip, points: Sequence[Point] | NDArray[np.float64], now: float
                  ) -> NDArray[np.float64]:
    """The trace the meter prices, as (ts, lat, lng) rows: the pickup at the start, the points
    sent during the ride (in arrival order, none older than the one before), and the last
    position at `now` (the dropoff when the driver sent nothing on the way)."""
    start = trip.started_at or now
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    return _taken(pts, float(start), float(now), trip.pickup_lat, trip.pickup_lng,
                  trip.dropoff_lat, trip.dropoff_lng)


@njit(cache=True, nogil=True)
def _taken(pts, start, now, plat, plng, dlat, dlng):  # type: ignore[no-untyped-def]
    """`metered_trace`'s rule in one pass (a dozen numpy calls on a few hundred rows cost more
    than the rows): a point is taken when it is not after `now` and not older than the latest
    point taken before it (or the start); a NaN time is never taken."""
    out = np.empty((pts.shape[0] + 2, 3))
    out[0, 0], out[0, 1], out[0, 2] = start, plat, plng
    m = 1
    latest = start
    for i in range(pts.shape[0]):
        t = pts[i, 0]
        if t <= now and t >= latest:
            out[m, 0], out[m, 1], out[m, 2] = t, pts[i, 1], pts[i, 2]
            m += 1
            latest = t
    if m == 1:
        out[1, 0], out[1, 1], out[1, 2] = now, dlat, dlng
        return out[:2]
    if out[m - 1, 0] < now:
        out[m, 0], out[m, 1], out[m, 2] = now, out[m - 1, 1], out[m - 1, 2]
        m += 1
    return out[:m]


def meter(tariff: Tariff, trip: Trip, points: Sequence[Point] | NDArray[np.float64], now: float,
          policy: UpfrontPolicy | None = None, route: Route | None = None) -> Fare:
    """The fare of a trip completing at `now`: the rule in the module docstring, applied to
    the upfront quote and the driver's trace. `route` is the one the quote was priced on (the
    travel-time model is asked again for the request time: it answers the same)."""
    policy = policy or UpfrontPolicy()
    surge = Decimal(trip.surge)
    quoted = quote(tariff, (trip.pickup_lat, trip.pickup_lng),
                   (trip.dropoff_lat, trip.dropoff_lng), surge, route)
    if trip.fare_estimate is not None:  # what the rider was shown is what holds
        quoted = replace(quoted, total=trip.fare_estimate)
    metered = final_fare(tariff, metered_trace(trip, points, now), surge=surge)
    q, m = quoted.total, metered.total
    longer = (above(m, q, policy.tolerance)
              and (above(metered.distance_m, quoted.distance_m, policy.margin)
                   or above(metered.duration_s, quoted.duration_s, policy.margin)))
    if longer:
        cn, cd = ratio(policy.cap)
        ceiling = round_ratio_half_up(q * (cd + cn), cd)
        if m > ceiling:
            return Fare(ceiling, "metered_capped", quoted, metered)
        return Fare(m, "metered_longer", quoted, metered)
    shorter = m < q and below(metered.distance_m, quoted.distance_m, policy.margin)
    if shorter:
        return Fare(m, "metered_shorter", quoted, metered)
    return Fare(q, "quote", quoted, metered)
