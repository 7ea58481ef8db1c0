"""Fares: per-city tariffs, upfront estimates and final fares with a receipt breakdown.

Money is ``int`` minor units (cents). Physical quantities (metres, seconds) may be floats; they are
turned into exact rationals (integer pairs, `trips.money.ratio`) before any price touches them,
and each line of the receipt is rounded once (half-up), so no amount ever goes through float
arithmetic.

Two meter modes:

- ``"both"`` (ride-hailing): every metre and every second is charged.
- ``"either"`` (a taximeter, e.g. NYC 2016): segment by segment, distance is charged while moving
  faster than ``threshold_speed_mps`` and time while slower, never both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Literal

import numpy as np
from numba import njit
from numpy.typing import NDArray

from ridehail.kernel.formats import format_minor
from ridehail.kernel.geo import EARTH_RADIUS_M, haversine_m
from trips.money import Exact, check_amount, exact, exact_ratio, ratio, round_ratio_half_up

MeterMode = Literal["both", "either"]
SpeedModel = Literal["exponential", "constant"]
TracePoint = tuple[float, float, float]  # (ts seconds, lat, lng)

METRES_PER_MILE = Decimal("1609.344")
# A segment faster than this is a GPS jump (or a forged trace), not city driving: its distance
# is not charged. 40 m/s = 144 km/h, above any urban limit; a tariff may set its own.
MAX_PLAUSIBLE_SPEED_MPS = 40.0


@dataclass(frozen=True)
class Tariff:
    """A city's price list. Prices are minor units per ``distance_unit_m`` / ``time_unit_s``."""

    city: str
    currency: str
    base: int
    distance_price: int
    distance_unit_m: Decimal
    time_price: int
    time_unit_s: Decimal = Decimal(60)
    minimum: int = 0
    booking_fee: int = 0
    meter_mode: MeterMode = "both"
    threshold_speed_mps: Decimal = Decimal(0)
    whole_units: bool = False  # a taximeter drops whole increments only
    detour_factor: Decimal = Decimal("1.3")  # road distance / straight line, for estimates
    expected_speed_mps: Decimal = Decimal(8)  # door-to-door average, for estimates
    currency_exponent: int = 2
    max_speed_mps: Decimal = Decimal(str(MAX_PLAUSIBLE_SPEED_MPS))  # faster: a jump, no distance

    def __post_init__(self) -> None:
        for name in ("base", "distance_price", "time_price", "minimum", "booking_fee"):
            check_amount(getattr(self, name), name)
        for name in ("distance_unit_m", "time_unit_s", "detour_factor", "expected_speed_mps",
                     "max_speed_mps"):
            if exact(getattr(self, name), name) <= 0:
                raise ValueError(f"{name}: must be > 0")
        if exact(self.threshold_speed_mps, "threshold_speed_mps") < 0:
            raise ValueError("threshold_speed_mps: must be >= 0")
        if self.meter_mode not in ("both", "either"):
            raise ValueError(f"meter_mode: expected 'both' or 'either', got {self.meter_mode!r}")
        if self.whole_units and self.distance_price != self.time_price:
            # One increment counter for both kinds of units, as a taximeter has.
            raise ValueError("whole_units: needs distance_price == time_price")


@dataclass(frozen=True)
class TripMeasure:
    """What the meter saw: totals, and the parts it charges (differ in ``either`` mode)."""

    distance_m: float
    duration_s: float
    charged_distance_m: float
    charged_duration_s: float
    gps_jumps: int = 0


@dataclass(frozen=True)
class FareBreakdown:
    """A fare, line by line, in minor units. ``total`` is what the rider is charged."""

    currency: str
    base: int
    distance: int
    time: int
    booking_fee: int
    surge_multiplier: Decimal
    surge_amount: int
    minimum_fare: int
    minimum_adjustment: int
    total: int
    distance_m: float
    duration_s: float
    estimate: bool
    surcharges: tuple[tuple[str, int], ...] = field(default=())
    currency_exponent: int = 2

    @property
    def minimum_applied(self) -> bool:
        return self.minimum_adjustment > 0

    @property
    def surcharges_total(self) -> int:
        return sum(amount for _, amount in self.surcharges)

    def to_dict(self) -> dict[str, object]:
        """Receipt form: amounts in minor units, plus ``total_display`` for humans."""
        return {
            "currency": self.currency,
            "base": self.base,
            "distance": self.distance,
            "time": self.time,
            "booking_fee": self.booking_fee,
            "surge_multiplier": str(self.surge_multiplier),
            "surge_amount": self.surge_amount,
            "minimum_fare": self.minimum_fare,
            "minimum_applied": self.minimum_applied,
            "minimum_adjustment": self.minimum_adjustment,
            "surcharges": dict(self.surcharges),
            "total": self.total,
            "total_display": format_minor(self.total, self.currency_exponent),
            "distance_m": round(self.distance_m, 1),
            "duration_s": round(self.duration_s, 1),
            "estimate": self.estimate,
        }


def _finite(value: float, name: str, *, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | Fraction):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    x = float(value)  # a physical quantity, not money
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    if minimum is not None and x < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value!r}")
    return x


def _latlng(lat: float, lng: float, name: str) -> tuple[float, float]:
    la = _finite(lat, f"{name}.lat", minimum=None)
    ln = _finite(lng, f"{name}.lng", minimum=None)
    if not -90.0 <= la <= 90.0:
        raise ValueError(f"{name}.lat: must be in [-90, 90], got {lat!r}")
    if not -180.0 <= ln <= 180.0:
        raise ValueError(f"{name}.lng: must be in [-180, 180], got {lng!r}")
    return la, ln


def _decimal(numerator: int, denominator: int) -> Decimal:
    return Decimal(numerator) / Decimal(denominator)


def measure_trace(tariff: Tariff, trace: Sequence[TracePoint] | NDArray[np.float64]
                  ) -> TripMeasure:
    """Measure a driven trip from the driver's (ts, lat, lng) points, segment by segment: a
    GPS jump (faster than `max_speed_mps`) charges its time, not its distance; in ``either``
    mode a segment above the threshold speed charges its distance, any other its time."""
    if len(trace) == 0:
        raise ValueError("trace: needs at least one point")
    out = np.empty(5)
    arr = _as_points(trace)
    if arr is None or not _measure(tariff, arr, out):
        # Something doubtful: the checks name the first bad point; a trace that passes them
        # (odd number types, say) is measured as its floats.
        _measure(tariff, _checked_points(trace), out)
    return TripMeasure(float(out[0]), float(out[1]), float(out[2]), float(out[3]), int(out[4]))


def _as_points(trace: Sequence[TracePoint] | NDArray[np.float64]) -> NDArray[np.float64] | None:
    try:
        arr = np.ascontiguousarray(trace, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.ndim == 2 and arr.shape[1] == 3 else None


def _measure(tariff: Tariff, arr: NDArray[np.float64], out: NDArray[np.float64]) -> bool:
    return bool(_measure_kernel(arr, float(tariff.max_speed_mps),
                                float(tariff.threshold_speed_mps), tariff.meter_mode == "both",
                                EARTH_RADIUS_M, out))


@njit(cache=True, nogil=True)
def _measure_kernel(arr, max_speed, threshold, both, radius, out):  # type: ignore[no-untyped-def]
    """The measure over a float array, one compiled pass (a trip's few hundred points cost a
    Python loop each, or a few dozen numpy calls): out = total distance and time, charged
    distance and time, GPS jumps. False, and nothing measured, at a point that is not finite,
    out of range, or earlier than the one before (`_checked_points` names it). Distances and
    times only: no money passes through here."""
    total_d = total_t = charged_d = charged_t = 0.0
    jumps = 0
    for i in range(arr.shape[0]):
        ts, lat, lng = arr[i, 0], arr[i, 1], arr[i, 2]
        if not (math.isfinite(ts) and math.isfinite(lat) and math.isfinite(lng)
                and -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
            return False
        if i > 0:
            dt = ts - arr[i - 1, 0]
            if dt < 0:
                return False
            p1, p2 = math.radians(arr[i - 1, 1]), math.radians(lat)
            s_phi = math.sin((p2 - p1) * 0.5)
            s_lam = math.sin(math.radians(lng - arr[i - 1, 2]) * 0.5)
            a = s_phi * s_phi + math.cos(p1) * math.cos(p2) * s_lam * s_lam
            d = 2.0 * radius * math.asin(math.sqrt(min(1.0, a)))  # ridehail.kernel.geo's
            speed = d / dt if dt > 0 else (math.inf if d > 0 else 0.0)
            total_t += dt
            if speed > max_speed:
                jumps += 1
                d = 0.0  # GPS jump: charge the elapsed time, not the teleport
            total_d += d
            if both:
                charged_d += d
                charged_t += dt
            elif d > 0 and speed > threshold:
                charged_d += d
            else:
                charged_t += dt
    out[0], out[1], out[2], out[3], out[4] = total_d, total_t, charged_d, charged_t, jumps
    return True


def _checked_points(trace: Sequence[TracePoint] | NDArray[np.float64]) -> NDArray[np.float64]:
    """The trace as floats, point by point; the first point that cannot be measured raises
    ValueError naming it."""
    rows = []
    prev = None
    for i, point in enumerate(trace):
        if len(point) != 3:
            raise ValueError(f"trace[{i}]: expected (ts, lat, lng)")
        ts = _finite(point[0], f"trace[{i}].ts", minimum=None)
        lat, lng = _latlng(point[1], point[2], f"trace[{i}]")
        if prev is not None and ts < prev:
            raise ValueError(f"trace[{i}].ts: goes backwards ({ts} < {prev})")
        rows.append((ts, lat, lng))
        prev = ts
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def measure_route(
    tariff: Tariff, distance_m: float, duration_s: float, *, speed_model: SpeedModel = "exponential"
) -> TripMeasure:
    """Measure a trip known only by its totals (a planned route, or a taxi record).

    In ``either`` mode the meter split between fast and slow stretches is not in the totals, so it
    is modelled. ``"exponential"``: the speed over the trip is exponentially distributed with the
    trip's mean speed v (the maximum-entropy law for a non-negative quantity with a known mean;
    no fitted parameter). With threshold c, the share of time below c is 1 - e^(-c/v) and the
    distance covered above c is T (c + v) e^(-c/v). ``"constant"``: the whole trip at speed v, which
    is the lower bound on a taximeter fare (the meter's rate is convex in speed).
    """
    d = _finite(distance_m, "distance_m")
    t = _finite(duration_s, "duration_s")
    if tariff.meter_mode == "both":
        return TripMeasure(d, t, d, t)
    c = float(tariff.threshold_speed_mps)
    if d == 0 or t == 0:
        return TripMeasure(d, t, d, t if d == 0 else 0.0)
    v = d / t
    if speed_model == "constant":
        return TripMeasure(d, t, d, 0.0) if v > c else TripMeasure(d, t, 0.0, t)
    if speed_model != "exponential":
        raise ValueError(f"speed_model: unknown {speed_model!r}")
    tail = math.exp(-c / v)
    return TripMeasure(d, t, min(d, t * (c + v) * tail), t * (1.0 - tail))


def price(
    tariff: Tariff,
    measure: TripMeasure,
    *,
    surge: Exact = 1,
    surcharges: Mapping[str, int] | None = None,
    estimate: bool = False,
) -> FareBreakdown:
    """Price a measured trip. Surge multiplies base + distance + time; the minimum applies to that
    surged subtotal; the booking fee and surcharges (taxes, tolls) are added unsurged after it."""
    sn, sd = exact_ratio(surge, "surge")
    if sn < sd:
        raise ValueError(f"surge: must be >= 1, got {surge}")
    extras = tuple(
        (str(k), check_amount(v, f"surcharges[{k!r}]")) for k, v in (surcharges or {}).items()
    )
    # Exact unit counts as integer pairs (a float's exact value), so nothing is rounded before
    # the price applies: units = dn/dd metres over un/ud metres per unit = (dn ud) / (dd un).
    # The tariff's units are > 0, so each denominator is.
    dn, dd = ratio(measure.charged_distance_m)
    un, ud = ratio(tariff.distance_unit_m)
    d_num, d_den = dn * ud, dd * un
    tn, td = ratio(measure.charged_duration_s)
    vn, vd = ratio(tariff.time_unit_s)
    t_num, t_den = tn * vd, td * vn
    if tariff.whole_units:
        dropped = (d_num * t_den + t_num * d_den) // (d_den * t_den)  # floor of the sum
        distance_part = tariff.distance_price * (d_num // d_den)
        time_part = tariff.time_price * dropped - distance_part
    else:
        distance_part = round_ratio_half_up(tariff.distance_price * d_num, d_den)
        time_part = round_ratio_half_up(tariff.time_price * t_num, t_den)
    metered = tariff.base + distance_part + time_part
    surge_amount = round_ratio_half_up(metered * (sn - sd), sd)
    adjustment = max(0, tariff.minimum - (metered + surge_amount))
    total = metered + surge_amount + adjustment + tariff.booking_fee + sum(a for _, a in extras)
    return FareBreakdown(
        currency=tariff.currency,
        base=tariff.base,
        distance=distance_part,
        time=time_part,
        booking_fee=tariff.booking_fee,
        surge_multiplier=surge if isinstance(surge, Decimal) else _decimal(sn, sd),
        surge_amount=surge_amount,
        minimum_fare=tariff.minimum,
        minimum_adjustment=adjustment,
        total=total,
        distance_m=measure.distance_m,
        duration_s=measure.duration_s,
        estimate=estimate,
        surcharges=extras,
        currency_exponent=tariff.currency_exponent,
    )


def estimate_fare(
    tariff: Tariff,
    pickup: tuple[float, float],
    dropoff: tuple[float, float],
    *,
    route_distance_m: float | None = None,
    route_duration_s: float | None = None,
    surge: Exact = 1,
    surcharges: Mapping[str, int] | None = None,
) -> FareBreakdown:
    """Upfront estimate at request time. Without a route, distance is the straight line times the
    tariff's detour factor; without a duration, distance over the tariff's expected speed."""
    p = _latlng(pickup[0], pickup[1], "pickup")
    q = _latlng(dropoff[0], dropoff[1], "dropoff")
    if route_distance_m is None:
        distance = haversine_m(*p, *q) * float(tariff.detour_factor)
    else:
        distance = _finite(route_distance_m, "route_distance_m")
    if route_duration_s is None:
        duration = distance / float(tariff.expected_speed_mps)
    else:
        duration = _finite(route_duration_s, "route_duration_s")
    measure = measure_route(tariff, distance, duration)
    return price(tariff, measure, surge=surge, surcharges=surcharges, estimate=True)


def final_fare(
    tariff: Tariff,
    trace: Sequence[TracePoint] | NDArray[np.float64],
    *,
    surge: Exact = 1,
    surcharges: Mapping[str, int] | None = None,
) -> FareBreakdown:
    """The fare at completion, from the driver's location trace during the trip."""
    return price(tariff, measure_trace(tariff, trace), surge=surge, surcharges=surcharges)


# NYC yellow cab, 2016 meter: $2.50 on entry, $0.50 per 1/5 mile above 12 mph or per 60 s below.
NYC_YELLOW_2016 = Tariff(
    city="nyc",
    currency="USD",
    base=250,
    distance_price=50,
    distance_unit_m=METRES_PER_MILE / 5,
    time_price=50,
    time_unit_s=Decimal(60),
    meter_mode="either",
    threshold_speed_mps=12 * METRES_PER_MILE / 3600,
    whole_units=True,
    detour_factor=Decimal("1.27"),  # ~4/pi, the mean Manhattan-grid detour
    expected_speed_mps=Decimal("5.0"),  # ~11 mph, NYC taxi door-to-door average
)

TARIFFS: dict[str, Tariff] = {"nyc": NYC_YELLOW_2016}


def tariff_for(city: str) -> Tariff:
    try:
        return TARIFFS[city]
    except KeyError:
        raise ValueError(f"city: no tariff for {city!r}") from None


def nyc_2016_surcharges(pickup_local: datetime) -> dict[str, int]:
    """NYC yellow-cab 2016 surcharges, itemised: MTA tax, improvement surcharge, and the night
    (20:00-06:00) or weekday peak (16:00-20:00) surcharge by local pickup time. Holidays ignored."""
    out = {"mta_tax": 50, "improvement_surcharge": 30}
    hour = pickup_local.hour
    if hour >= 20 or hour < 6:
        out["night"] = 50
    elif pickup_local.weekday() < 5 and 16 <= hour < 20:
        out["peak"] = 100
    return out
