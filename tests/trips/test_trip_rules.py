"""The trip rules on the in-memory unit of work, with no Flask: the state machine, who may act on
a trip, how a trip is priced, and who may rate it."""

from __future__ import annotations

import numpy as np
import pytest

from ridehail.units import UnitFactory, memory_uow_factory
from trips import ratings
from trips.access import is_party, may_view, party_trip, sees_driver_location
from trips.fares import NYC_YELLOW_2016
from trips.model import IllegalTransition, NotRatable, Trip, TripNotFound, TripState
from trips.pricing import meter, metered_trace, quote

T0 = 1_700_000_000.0
PICKUP = (40.7580, -73.9855)
DROPOFF = (40.7680, -73.9819)


def trip(**kw: object) -> Trip:
    base: dict[str, object] = dict(id="9", rider_id="50", vehicle_class="standard",
                                   pickup_lat=PICKUP[0], pickup_lng=PICKUP[1],
                                   dropoff_lat=DROPOFF[0], dropoff_lng=DROPOFF[1],
                                   requested_at=T0)
    base.update(kw)
    return Trip(**base)  # type: ignore[arg-type]


def test_the_state_machine_refuses_skipped_steps() -> None:
    t = trip()
    with pytest.raises(IllegalTransition):
        t.start(T0)
    t.assign("1", T0)
    with pytest.raises(IllegalTransition):
        t.complete(T0, distance_m=1.0, fare_final=100)
    t.arrive(T0)
    t.start(T0 + 1)
    with pytest.raises(IllegalTransition):
        t.cancel("rider", T0 + 2)  # a started trip is not cancelled, it is completed
    t.complete(T0 + 61, distance_m=500.0, fare_final=700)
    assert t.state == TripState.completed and t.duration_s == 60


def test_a_handed_back_trip_remembers_the_driver_who_left() -> None:
    t = trip()
    t.assign("1", T0)
    assert t.hand_back(T0 + 5) == "1"
    assert t.state == TripState.requested and t.driver_id is None
    assert t.rejected_drivers == ["1"]


def test_only_the_rider_and_the_assigned_driver_are_parties() -> None:
    t = trip()
    t.assign("1", T0)
    assert is_party(t, "rider", "50") and is_party(t, "driver", "1")
    assert not is_party(t, "driver", "50")  # ids are per account, roles do not mix
    assert not is_party(t, "rider", "1")
    assert not is_party(t, "service", "50") and not is_party(None, "rider", "50")
    unassigned = trip()
    assert not is_party(unassigned, "driver", "1")
    with pytest.raises(TripNotFound):
        party_trip(t, t.id, "rider", "51")


def test_a_driver_with_a_pending_offer_may_view_but_is_not_a_party() -> None:
    t = trip()
    assert may_view(t, "driver", "2", offer_pending=True)
    assert not may_view(t, "driver", "2", offer_pending=False)
    assert not may_view(t, "rider", "51", offer_pending=True)


def test_only_the_rider_sees_the_driver_and_only_while_the_driver_is_theirs() -> None:
    t = trip()
    assert not sees_driver_location(t, "rider", "50")  # no driver yet
    t.assign("1", T0)
    assert sees_driver_location(t, "rider", "50")
    assert not sees_driver_location(t, "driver", "1") and not sees_driver_location(
        t, "rider", "51")
    t.arrive(T0)
    assert sees_driver_location(t, "rider", "50")
    t.start(T0)
    assert sees_driver_location(t, "rider", "50")
    t.complete(T0 + 60, distance_m=500.0, fare_final=700)
    assert not sees_driver_location(t, "rider", "50")  # the ride is over


def test_the_meter_brackets_the_trace_with_the_pickup_and_the_last_position() -> None:
    t = trip(started_at=T0)
    points = [(T0 - 30, 0.0, 0.0), (T0 + 10, 40.76, -73.985), (T0 + 500, 1.0, 1.0)]
    trace = metered_trace(t, points, T0 + 60)
    # A point from before the start or after `now` is not the ride's.
    assert trace.tolist() == [[T0, PICKUP[0], PICKUP[1]], [T0 + 10, 40.76, -73.985],
                              [T0 + 60, 40.76, -73.985]]
    # Nothing sent on the way: the ride is priced to the dropoff.
    assert metered_trace(t, [], T0 + 60).tolist() == [[T0, PICKUP[0], PICKUP[1]],
                                                       [T0 + 60, DROPOFF[0], DROPOFF[1]]]


@pytest.mark.parametrize("seed", range(20))
def test_the_meter_takes_the_points_the_one_by_one_rule_takes(seed: int) -> None:
    """The compiled filter takes what the rule written point by point takes: out of order,
    before the start, after `now`, repeats of one instant, a time that is not a number."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    ts = T0 + rng.uniform(-60, 400, n)
    ts[rng.random(n) < 0.3] = T0 + 10.0  # repeats of one instant are taken
    ts[rng.random(n) < 0.05] = np.nan  # never taken
    points = [(float(a), float(b), float(c)) for a, b, c in zip(
        ts, PICKUP[0] + rng.normal(0, 1e-3, n), PICKUP[1] + rng.normal(0, 1e-3, n),
        strict=True)]
    now = T0 + 300.0
    expected = [(T0, *PICKUP)]
    for p in points:
        if not np.isnan(p[0]) and expected[-1][0] <= p[0] <= now:
            expected.append(p)
    if len(expected) == 1:
        expected.append((now, *DROPOFF))
    elif expected[-1][0] < now:
        expected.append((now, expected[-1][1], expected[-1][2]))
    got = metered_trace(trip(started_at=T0), points, now)
    assert [tuple(p) for p in got.tolist()] == expected


def test_the_quote_locks_the_surge_and_the_meter_uses_the_trips() -> None:
    from decimal import Decimal

    one = quote(NYC_YELLOW_2016, PICKUP, DROPOFF, Decimal(1))
    two = quote(NYC_YELLOW_2016, PICKUP, DROPOFF, Decimal(2))
    assert two.total > one.total
    t = trip(started_at=T0, surge="2.0")
    assert meter(NYC_YELLOW_2016, t, [], T0 + 120).total > \
        meter(NYC_YELLOW_2016, trip(started_at=T0), [], T0 + 120).total


@pytest.fixture
def units() -> UnitFactory:
    return memory_uow_factory()


def _completed(units: UnitFactory) -> Trip:
    t = trip()
    t.assign("1", T0)
    t.arrive(T0)
    t.start(T0)
    t.complete(T0 + 60, distance_m=500.0, fare_final=700)
    with units() as uow:
        uow.trips.add(t)
        uow.commit()
    return t


def test_only_the_trips_parties_rate_it_once_each(units: UnitFactory) -> None:
    t = _completed(units)
    with pytest.raises(TripNotFound):
        ratings.rate(units, t.id, "rider", "51", 5, None, T0)
    with pytest.raises(TripNotFound):
        ratings.rate(units, t.id, "driver", "2", 5, None, T0)
    given = ratings.rate(units, t.id, "rider", "50", 4, None, T0)
    assert given.ratee_id == "1"
    with pytest.raises(NotRatable):
        ratings.rate(units, t.id, "rider", "50", 5, None, T0)
    assert ratings.rate(units, t.id, "driver", "1", 5, None, T0).ratee_id == "50"


def test_an_unfinished_trip_is_not_rated(units: UnitFactory) -> None:
    t = trip()
    t.assign("1", T0)
    with units() as uow:
        uow.trips.add(t)
        uow.commit()
    with pytest.raises(NotRatable):
        ratings.rate(units, t.id, "rider", "50", 5, None, T0)
