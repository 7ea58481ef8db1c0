"""Ratings: rules (completed trips only, once per party, only the trip's parties) and the
aggregate the task maintains, idempotently."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ridehail.settings import Settings
from trips import ratings
from trips.model import NotRatable, TripNotFound, TripState

from .helpers import completed_trip, migrated


@pytest.fixture
def uowf(any_db_settings: Settings) -> Iterator[Any]:
    engine, factory = migrated(any_db_settings.database_url)
    yield factory
    engine.dispose()


def test_both_parties_rate_once_each(uowf: Any) -> None:
    trip = completed_trip(uowf)
    now = time.time()
    by_rider = ratings.rate(uowf, trip.id, "rider", trip.rider_id, 5, "great", now)
    by_driver = ratings.rate(uowf, trip.id, "driver", trip.driver_id, 3, None, now)
    assert (by_rider.ratee_id, by_driver.ratee_id) == (trip.driver_id, trip.rider_id)
    with pytest.raises(NotRatable, match="already rated"):
        ratings.rate(uowf, trip.id, "rider", trip.rider_id, 1, None, now)
    with uowf(readonly=True) as uow:
        assert uow.ratings.get(trip.id, "rider").stars == 5  # the second one changed nothing


def test_only_completed_trips_and_only_their_parties(uowf: Any) -> None:
    live = completed_trip(uowf, state=TripState.in_progress)
    with pytest.raises(NotRatable, match="only completed"):
        ratings.rate(uowf, live.id, "rider", live.rider_id, 4, None, time.time())
    trip = completed_trip(uowf)
    with pytest.raises(TripNotFound):
        ratings.rate(uowf, trip.id, "rider", "999", 4, None, time.time())
    with pytest.raises(TripNotFound):  # the driver id, but acting as a rider
        ratings.rate(uowf, trip.id, "rider", trip.driver_id, 4, None, time.time())
    with pytest.raises(ValueError, match="stars"):
        ratings.rate(uowf, trip.id, "rider", trip.rider_id, 6, None, time.time())


def test_apply_is_idempotent_and_the_recent_average_covers_the_last_20(uowf: Any) -> None:
    driver = "4242"
    stars = [1] * 5 + [5] * 20  # the five 1-star ratings are older than the last 20
    for s in stars:
        trip = completed_trip(uowf, driver_id=driver)
        ratings.rate(uowf, trip.id, "rider", trip.rider_id, s, None, time.time())
        first = ratings.apply_rating(uowf, trip.id, "rider")
        again = ratings.apply_rating(uowf, trip.id, "rider")  # a redelivered task
        assert first is not None and again is not None
        assert again[1].count == first[1].count
    agg = ratings.aggregate(uowf, driver)
    assert agg.count == 25
    assert agg.average == round(sum(stars) / 25, 2)
    assert agg.recent_average == 5.0
    assert ratings.averages(uowf, [driver, "1"]) == {driver: agg.average}
    assert ratings.apply_rating(uowf, "77", "rider") is None
