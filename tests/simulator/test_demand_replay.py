"""simulator.demand: replaying real demand in time, upsampling, and synthetic hotspot demand."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from simulator.city import City, load_city
from simulator.demand import (
    DEFAULT_TRIP_LENGTH,
    DemandData,
    DemandError,
    Hotspot,
    TripRequest,
    build_demand,
    hotspot_demand,
    load_demand,
    replay,
)

# The repository's copies (data/README.md), not $RIDEHAIL_DATA_DIR: the expectations below
# are about these exact files.
DATA = Path(__file__).resolve().parents[2] / "data"
HOUR = 3600.0


@cache
def nyc() -> City:
    return load_city(DATA / "nyc" / "boroughs.geojson")


@cache
def yellow() -> DemandData:
    return load_demand(DATA / "nyc" / "yellow_taxi_2016-01_sample.csv", nyc())


@cache
def uber() -> DemandData:
    return load_demand(DATA / "nyc" / "uber_pickups_2014-04_sample.csv", nyc())


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (a[0] - b[0]) * 111.195
    dx = (a[1] - b[1]) * 111.195 * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


def _inside(reqs: list[TripRequest]) -> bool:
    lat = [r.pickup_lat for r in reqs] + [r.dropoff_lat for r in reqs]
    lng = [r.pickup_lng for r in reqs] + [r.dropoff_lng for r in reqs]
    return bool(nyc().contains_many(lat, lng).all())


def _well_formed(reqs: list[TripRequest], duration_s: float) -> None:
    assert [r.request_id for r in reqs] == list(range(len(reqs)))
    assert all(a.t_s <= b.t_s for a, b in zip(reqs, reqs[1:], strict=False))
    assert all(0 <= r.t_s < duration_s for r in reqs)


def test_replay_is_deterministic_for_a_seed() -> None:
    recs = yellow().records
    a = replay(recs, nyc(), duration_s=HOUR, rate_per_hour=12_000, seed=42)
    b = replay(recs, nyc(), duration_s=HOUR, rate_per_hour=12_000, seed=42)
    c = replay(recs, nyc(), duration_s=HOUR, rate_per_hour=12_000, seed=43)
    assert a == b
    assert a != c


@pytest.mark.parametrize(
    ("rate", "duration_s"), [(20_000, 1800.0), (7_500, 2 * HOUR), (1_000, HOUR)]
)
def test_rate_is_reached(rate: float, duration_s: float) -> None:
    reqs = replay(yellow().records, nyc(), duration_s=duration_s, rate_per_hour=rate, seed=1)
    assert len(reqs) / (duration_s / HOUR) == pytest.approx(rate, rel=0.01)
    _well_formed(reqs, duration_s)
    assert _inside(reqs)
    jittered = sum(r.jittered for r in reqs)
    assert jittered == max(0, len(reqs) - len(yellow().records))


def test_default_rate_replays_every_row_once_folded_by_time_of_day() -> None:
    recs = yellow().records
    reqs = replay(recs, nyc(), duration_s=HOUR, seed=3)
    assert len(reqs) == len(recs) and not any(r.jittered for r in reqs)
    by_row = {r.row: r for r in recs}
    assert sorted(r.source_row for r in reqs if r.source_row is not None) == sorted(by_row)
    for r in reqs:
        assert r.source_row is not None
        assert r.t_s == pytest.approx(by_row[r.source_row].time_of_day_s / 24)
        assert r.pickup == (by_row[r.source_row].pickup_lat, by_row[r.source_row].pickup_lng)


def test_upsampling_keeps_the_daily_shape() -> None:
    recs = yellow().records
    reqs = replay(recs, nyc(), duration_s=HOUR, rate_per_hour=50_000, seed=5)
    src = np.histogram([r.time_of_day_s / 24 for r in recs], bins=24, range=(0, HOUR))[0]
    out = np.histogram([r.t_s for r in reqs], bins=24, range=(0, HOUR))[0]
    assert np.corrcoef(src, out)[0, 1] > 0.95


def test_spatial_jitter_is_about_150_m() -> None:
    recs = {r.row: r for r in yellow().records}
    reqs = replay(list(recs.values()), nyc(), duration_s=HOUR, rate_per_hour=15_000, seed=9)
    moved = [
        _km(r.pickup, (recs[r.source_row].pickup_lat, recs[r.source_row].pickup_lng))
        for r in reqs
        if r.jittered and r.source_row is not None
    ]
    # Rayleigh median of a 150 m gaussian: 177 m.
    assert 0.14 < float(np.median(moved)) < 0.22
    assert max(moved) < 1.5


def test_window_replays_real_time_of_day() -> None:
    recs = yellow().records
    start = 8 * HOUR
    reqs = replay(recs, nyc(), duration_s=HOUR, seed=1, window_start_s=start)
    in_window = [r for r in recs if start <= r.time_of_day_s < start + HOUR]
    assert len(reqs) == len(in_window) > 50
    assert sorted(r.t_s for r in reqs) == sorted(r.time_of_day_s - start for r in in_window)
    up = replay(recs, nyc(), duration_s=HOUR, rate_per_hour=2_000, seed=1, window_start_s=start)
    assert len(up) == 2_000 and _inside(up)
    _well_formed(up, HOUR)


def test_uber_gets_synthetic_dropoffs_inside_the_city() -> None:
    reqs = replay(uber().records, nyc(), duration_s=HOUR, rate_per_hour=15_000, seed=2)
    assert len(reqs) == 15_000
    assert all(r.dropoff_synthetic for r in reqs)
    assert _inside(reqs)
    km = [_km(r.pickup, r.dropoff) for r in reqs]
    assert 1.5 < float(np.median(km)) < 3.0  # lognormal median exp(0.793) = 2.2 km
    assert max(km) <= DEFAULT_TRIP_LENGTH.max_km + 0.1


def test_replay_bad_arguments() -> None:
    recs = yellow().records
    with pytest.raises(ValueError, match="duration_s"):
        replay(recs, nyc(), duration_s=0)
    with pytest.raises(ValueError, match="rate_per_hour"):
        replay(recs, nyc(), duration_s=HOUR, rate_per_hour=-1)
    with pytest.raises(ValueError, match="24 h"):
        replay(recs, nyc(), duration_s=2 * 86400, window_start_s=0)
    with pytest.raises(DemandError, match="no demand rows"):
        replay(
            recs[:1], nyc(), duration_s=60, window_start_s=(recs[0].time_of_day_s + 3600) % 86400
        )


def test_hotspot_demand_poisson_inside_and_deterministic() -> None:
    a = hotspot_demand(nyc(), duration_s=HOUR, rate_per_hour=4_000, seed=11)
    b = hotspot_demand(nyc(), duration_s=HOUR, rate_per_hour=4_000, seed=11)
    assert a == b
    assert abs(len(a) - 4_000) < 4 * math.sqrt(4_000)
    _well_formed(a, HOUR)
    assert _inside(a)
    assert all(r.source_row is None and r.dropoff_synthetic for r in a)


def test_hotspots_concentrate_pickups() -> None:
    spot = Hotspot(40.7580, -73.9855, sigma_m=400)
    reqs = hotspot_demand(
        nyc(), duration_s=HOUR, rate_per_hour=2_000, seed=4, hotspots=[spot], background_share=0.0
    )
    d = [_km(r.pickup, (spot.lat, spot.lng)) for r in reqs]
    assert float(np.median(d)) < 0.7
    assert _inside(reqs)


def test_build_demand_picks_the_source() -> None:
    plan = build_demand(nyc(), None, duration_s=600, seed=1)
    assert plan.source == "hotspots" and plan.format_name is None and plan.requests
    path = DATA / "nyc" / "green_taxi_2016-01_sample.csv"
    plan = build_demand(nyc(), path, duration_s=600, rate_per_hour=3_000, seed=1)
    assert plan.format_name == "nyc_green_2016" and len(plan.requests) == 500
    assert plan.rows_read == 5000 and plan.rejected["zero_coords"] == 7
