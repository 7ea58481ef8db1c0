"""Ratings: after a completed trip its rider rates the driver and its driver rates the rider,
once each. The API stores the rating (the (trip, rater role) key refuses a second one); the
`apply_rating` task folds it into the ratee's aggregate, once (a CAS on `applied`)."""

from __future__ import annotations

from ridehail.kernel.errors import Conflict

from .access import party_trip
from .model import NotRatable, Rating, RatingAggregate, TripState
from .unit import TripsUnits


def rate(uow_factory: TripsUnits, trip_id: str, role: str, account_id: str,
         stars: int, comment: str | None, now: float) -> Rating:
    if not 1 <= stars <= 5:
        raise ValueError("stars: must be 1..5")
    with uow_factory() as uow:
        trip = party_trip(uow.trips.get(trip_id), trip_id, role, account_id)
        if trip.state != TripState.completed:
            raise NotRatable(f"trip {trip_id} is {trip.state.value}; only completed trips "
                             "can be rated")
        ratee = trip.driver_id if role == "rider" else trip.rider_id
        assert ratee is not None  # a completed trip has its driver
        rating = Rating(trip_id, role, account_id, ratee, stars, comment, now)
        try:
            uow.ratings.add(rating)
        except Conflict:
            raise NotRatable(f"the {role} has already rated trip {trip_id}") from None
        uow.commit()
    return rating


def apply_rating(uow_factory: TripsUnits, trip_id: str, role: str
                 ) -> tuple[Rating, RatingAggregate] | None:
    """Fold one rating into its ratee's aggregate (and the account's rating_sum/count), in one
    transaction. A second delivery finds it applied and changes nothing. Raises Conflict when
    a concurrent rating of the same ratee won the race (the task retries)."""
    with uow_factory() as uow:
        rating: Rating | None = uow.ratings.get(trip_id, role)
        if rating is None:
            return None
        agg = uow.rating_aggregates.get(rating.ratee_id)
        if rating.applied:
            return rating, agg or RatingAggregate(rating.ratee_id)
        uow.ratings.mark_applied(trip_id, role)
        if agg is None:
            agg = RatingAggregate(rating.ratee_id)
            agg.add(rating.stars)
            uow.rating_aggregates.add(agg)
        else:
            agg.add(rating.stars)
            uow.rating_aggregates.save(agg)
        uow.accounts.add_rating(rating.ratee_id, rating.stars)
        uow.commit()
    rating.applied = True
    return rating, agg


def aggregate(uow_factory: TripsUnits, account_id: str) -> RatingAggregate:
    with uow_factory(readonly=True) as uow:
        return uow.rating_aggregates.get(account_id) or RatingAggregate(account_id)


def averages(uow_factory: TripsUnits, account_ids: list[str]) -> dict[str, float]:
    """Average stars of the rated accounts among `account_ids` (dispatch's tie-breaker)."""
    out: dict[str, float] = {}
    with uow_factory(readonly=True) as uow:
        for start in range(0, len(account_ids), 500):
            for agg in uow.rating_aggregates.many(account_ids[start:start + 500]):
                if agg.average is not None:
                    out[agg.account_id] = agg.average
    return out
