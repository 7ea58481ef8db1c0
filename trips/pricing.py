"""How a trip is priced, in one place: the upfront quote at request time and the metered fare
at completion (the driver's trace during the ride, bracketed by the pickup and the last
position). The tariff arithmetic itself lives in `trips/fares.py`."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from .fares import FareBreakdown, Tariff, estimate_fare, final_fare
from .model import Trip

Point = tuple[float, float, float]  # (ts, lat, lng)


def quote(tariff: Tariff, pickup: tuple[float, float], dropoff: tuple[float, float],
          surge: Decimal) -> FareBreakdown:
    """The upfront estimate a rider sees, with the surge locked in."""
    return estimate_fare(tariff, pickup, dropoff, surge=surge)


def metered_trace(trip: Trip, points: Sequence[Point], now: float) -> list[Point]:
    """The trace the meter prices: the pickup at the start, the points sent during the ride,
    and the last position at `now` (the dropoff when the driver sent nothing on the way)."""
    start = trip.started_at or now
    trace = [(start, trip.pickup_lat, trip.pickup_lng)]
    trace += [p for p in points if start <= p[0] <= now]
    if len(trace) == 1:
        trace.append((now, trip.dropoff_lat, trip.dropoff_lng))
    elif trace[-1][0] < now:
        trace.append((now, trace[-1][1], trace[-1][2]))
    return trace


def meter(tariff: Tariff, trip: Trip, points: Sequence[Point], now: float) -> FareBreakdown:
    """The final fare of a trip completing at `now`, from the driver's trace."""
    return final_fare(tariff, metered_trace(trip, points, now), surge=Decimal(trip.surge))
