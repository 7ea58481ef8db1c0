"""Fares: hand-computed meter cases, tariffs, estimates, receipts and bad input."""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal

import pytest

from trips.fares import (
    NYC_YELLOW_2016,
    Tariff,
    estimate_fare,
    final_fare,
    haversine_m,
    measure_route,
    measure_trace,
    nyc_2016_surcharges,
    price,
    tariff_for,
)

M_PER_DEG = 6_371_008.8 * math.pi / 180  # metres per degree of latitude in haversine_m
MILE = 1609.344
LAT0, LNG0 = 40.75, -73.98

# A ride-hailing tariff: every km and every minute charged, minimum and booking fee.
RIDEHAIL = Tariff(
    city="test",
    currency="USD",
    base=200,
    distance_price=100,
    distance_unit_m=Decimal(1000),
    time_price=30,
    time_unit_s=Decimal(60),
    minimum=700,
    booking_fee=150,
)


def north(points: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """A trace driving due north: [(seconds since start, metres since start)] -> (ts, lat, lng)."""
    return [(t, LAT0 + m / M_PER_DEG, LNG0) for t, m in points]


def test_trace_helper_is_accurate() -> None:
    (t0, a, b), (t1, c, d) = north([(0, 0), (1, 1000)])
    assert haversine_m(a, b, c, d) == pytest.approx(1000, abs=1e-6)


def test_nyc_fast_segment_charged_by_distance() -> None:
    # 1.01 mi in 180 s (~20 mph > 12): 5 whole fifths of a mile -> $2.50 + 5 x $0.50.
    fare = final_fare(NYC_YELLOW_2016, north([(0, 0), (180, 1.01 * MILE)]))
    assert (fare.base, fare.distance, fare.time, fare.total) == (250, 250, 0, 500)


def test_nyc_slow_segment_charged_by_time() -> None:
    # 200 m in 300 s (1.5 mph < 12): 5 minutes, the distance is not charged.
    fare = final_fare(NYC_YELLOW_2016, north([(0, 0), (300, 200)]))
    assert (fare.distance, fare.time, fare.total) == (0, 250, 500)


def test_nyc_mixed_segments_share_one_increment_counter() -> None:
    # fast: 5.05 fifths of a mile; slow: 100 m in 150 s = 2.5 minutes; 7.55 units -> 7 dropped.
    trace = north([(0, 0), (180, 1.01 * MILE), (330, 1.01 * MILE + 100)])
    fare = final_fare(NYC_YELLOW_2016, trace)
    assert (fare.distance, fare.time, fare.total) == (250, 100, 600)
    m = measure_trace(NYC_YELLOW_2016, trace)
    assert m.charged_duration_s == 150
    assert m.distance_m == pytest.approx(1.01 * MILE + 100)


def test_nyc_waiting_at_a_light_is_time() -> None:
    trace = north([(0, 0), (60, 0), (120, 0), (125, 0)])
    assert final_fare(NYC_YELLOW_2016, trace).time == 100


def test_single_point_trace_is_the_flag_drop() -> None:
    fare = final_fare(NYC_YELLOW_2016, [(0.0, LAT0, LNG0)])
    assert fare.total == 250 and fare.distance_m == 0


def test_gps_jump_is_not_charged_as_distance() -> None:
    trace = north([(0, 0), (10, 10_000), (70, 10_000)])
    m = measure_trace(NYC_YELLOW_2016, trace)
    assert m.gps_jumps == 1 and m.charged_distance_m == 0 and m.charged_duration_s == 70


def test_ridehail_charges_distance_and_time_plus_booking_fee() -> None:
    fare = price(RIDEHAIL, measure_route(RIDEHAIL, 5000, 600))
    assert (fare.base, fare.distance, fare.time, fare.booking_fee) == (200, 500, 300, 150)
    assert fare.total == 1150 and not fare.minimum_applied


def test_minimum_fare_tops_up_before_booking_fee() -> None:
    fare = price(RIDEHAIL, measure_route(RIDEHAIL, 1000, 120))  # 200 + 100 + 60 = 360
    assert fare.minimum_applied and fare.minimum_adjustment == 340
    assert fare.total == 700 + 150


def test_surge_multiplies_metered_part_only() -> None:
    fare = price(RIDEHAIL, measure_route(RIDEHAIL, 5000, 600), surge=Decimal("1.5"))
    assert fare.surge_amount == 500 and fare.total == 1000 + 500 + 150
    assert fare.surge_multiplier == Decimal("1.5")


def test_surge_counts_towards_the_minimum() -> None:
    fare = price(RIDEHAIL, measure_route(RIDEHAIL, 1000, 120), surge=Decimal(2))
    assert fare.surge_amount == 360 and fare.minimum_adjustment == 0 and fare.total == 870


def test_surcharges_are_separate_unsurged_lines() -> None:
    extras = {"mta_tax": 50, "improvement_surcharge": 30}
    fare = price(RIDEHAIL, measure_route(RIDEHAIL, 5000, 600), surge=2, surcharges=extras)
    assert fare.surcharges == (("mta_tax", 50), ("improvement_surcharge", 30))
    assert fare.total == 1000 * 2 + 150 + 80


def test_non_whole_units_round_half_up_once() -> None:
    fare = price(RIDEHAIL, measure_route(RIDEHAIL, 1005, 0))  # 100.5 cents of distance
    assert fare.distance == 101


def test_receipt_dict_is_json_and_balances() -> None:
    fare = price(RIDEHAIL, measure_route(RIDEHAIL, 5000, 600), surge=Decimal("1.3"))
    d = fare.to_dict()
    json.dumps(d)
    parts = ("base", "distance", "time", "surge_amount", "minimum_adjustment", "booking_fee")
    assert sum(d[k] for k in parts) == d["total"]  # type: ignore[misc]
    assert d["surge_multiplier"] == "1.3" and d["total_display"] == "14.50"


def test_estimate_uses_detour_and_expected_speed() -> None:
    (_, a, b), (_, c, dd) = north([(0, 0), (0, 3000)])
    est = estimate_fare(RIDEHAIL, (a, b), (c, dd))
    # 3 km x 1.3 = 3.9 km; at 8 m/s = 487.5 s.
    assert est.estimate and est.distance == 390 and est.time == round(30 * 487.5 / 60)
    routed = estimate_fare(RIDEHAIL, (a, b), (c, dd), route_distance_m=4000, route_duration_s=600)
    assert (routed.distance, routed.time) == (400, 300)


def test_nyc_estimate_models_the_slow_fast_split() -> None:
    fast = measure_route(NYC_YELLOW_2016, 10 * MILE, 20 * 60)  # 30 mph average
    slow = measure_route(NYC_YELLOW_2016, 1 * MILE, 20 * 60)  # 3 mph average
    assert fast.charged_distance_m > 0.9 * fast.distance_m
    assert slow.charged_duration_s > 0.95 * slow.duration_s
    # Never below the constant-speed fare: the meter's rate is convex in speed.
    for d, t in ((2 * MILE, 600), (5 * MILE, 1500), (MILE, 240)):
        expo = price(NYC_YELLOW_2016, measure_route(NYC_YELLOW_2016, d, t)).total
        const = price(NYC_YELLOW_2016, measure_route(NYC_YELLOW_2016, d, t, speed_model="constant"))
        assert expo >= const.total


def test_tariff_lookup_and_nyc_surcharges() -> None:
    assert tariff_for("nyc") is NYC_YELLOW_2016
    with pytest.raises(ValueError, match="city"):
        tariff_for("atlantis")
    base = {"mta_tax": 50, "improvement_surcharge": 30}
    assert nyc_2016_surcharges(datetime(2016, 1, 6, 12)) == base  # Wednesday noon
    assert nyc_2016_surcharges(datetime(2016, 1, 6, 17)) == base | {"peak": 100}
    assert nyc_2016_surcharges(datetime(2016, 1, 9, 17)) == base  # Saturday
    assert nyc_2016_surcharges(datetime(2016, 1, 9, 23)) == base | {"night": 50}


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: measure_route(RIDEHAIL, -1.0, 60), "distance_m"),
        (lambda: measure_route(RIDEHAIL, float("nan"), 60), "distance_m"),
        (lambda: measure_route(RIDEHAIL, 100, float("inf")), "duration_s"),
        (lambda: measure_route(RIDEHAIL, 100, -5), "duration_s"),
        (
            lambda: estimate_fare(RIDEHAIL, (LAT0, LNG0), (LAT0, LNG0), route_distance_m=-3),
            "route_",
        ),
        (lambda: estimate_fare(RIDEHAIL, (91.0, LNG0), (LAT0, LNG0)), r"pickup\.lat"),
        (lambda: estimate_fare(RIDEHAIL, (LAT0, LNG0), (LAT0, float("nan"))), r"dropoff\.lng"),
        (lambda: final_fare(RIDEHAIL, [(10.0, LAT0, LNG0), (5.0, LAT0, LNG0)]), r"trace\[1\]\.ts"),
        (lambda: final_fare(RIDEHAIL, [(float("nan"), LAT0, LNG0)]), r"trace\[0\]\.ts"),
        (lambda: final_fare(RIDEHAIL, []), "trace"),
        (lambda: price(RIDEHAIL, measure_route(RIDEHAIL, 1, 1), surge=Decimal("0.9")), "surge"),
        (
            lambda: price(RIDEHAIL, measure_route(RIDEHAIL, 1, 1), surcharges={"x": -1}),
            "surcharges",
        ),
        (lambda: Tariff("x", "USD", -1, 1, Decimal(1), 1), "base"),
        (lambda: Tariff("x", "USD", 1, 1, Decimal(0), 1), "distance_unit_m"),
    ],
)
def test_bad_input_raises_value_error_naming_the_field(call: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        call()  # type: ignore[operator]
