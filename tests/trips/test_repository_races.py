"""Races on the trips repositories (trips, payments, payment methods, rating aggregates): two
readers of one row both save; exactly one gets `Conflict`. Interleaved units on memory, SQLite
and PostgreSQL; two threads with two open units on PostgreSQL, where the uniqueness rules (one
open trip per rider, one live trip per driver, one payment per trip, one ledger line per trip
and kind, one rating per trip and role) are raced too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ridehail.kernel.errors import Conflict
from ridehail.kernel.ids import new_id
from tests.repository_races import Race, interleaved, overlapping, overlapping_writes
from trips.ledger import LedgerEntry
from trips.model import Rating, RatingAggregate, Trip
from trips.payments import Payment, PaymentMethod

T0 = 1_767_000_000.0


def _trip(rider_id: str | None = None) -> Trip:
    return Trip(id=new_id(), rider_id=rider_id or new_id(), vehicle_class="standard",
                pickup_lat=40.758, pickup_lng=-73.9855, dropoff_lat=40.7484,
                dropoff_lng=-73.9857, requested_at=T0)


def _seed_trip(uow: Any) -> str:
    trip = _trip()
    uow.trips.add(trip)
    return trip.id


def _cancel_or_assign(trip: Trip, n: int) -> None:
    # The rider cancelling while a driver accepts: both are legal from `requested`.
    if n == 1:
        trip.cancel("rider", T0 + 1)
    else:
        trip.assign(new_id(), T0 + 1)


def _seed_payment(uow: Any) -> str:
    pay = Payment(new_id(), new_id(), new_id(), 1500, "USD", created_at=T0, updated_at=T0)
    uow.payments.add(pay)
    return pay.trip_id


def _settle(pay: Payment, n: int) -> None:
    # A charge task and its redelivery both recording an outcome.
    pay.state, pay.attempts, pay.updated_at = ("captured" if n == 1 else "failed"), n, T0 + n


def _seed_method(uow: Any) -> str:
    method = PaymentMethod(new_id(), "tok_ok", T0)
    uow.payment_methods.add(method)
    return method.account_id


def _replace_token(method: PaymentMethod, n: int) -> None:
    method.token, method.updated_at = ("tok_flaky" if n == 1 else "tok_declined"), T0 + n


def _seed_aggregate(uow: Any) -> str:
    agg = RatingAggregate(new_id(), 1, 4, [4])
    uow.rating_aggregates.add(agg)
    return agg.account_id


def _fold(agg: RatingAggregate, n: int) -> None:
    # Two apply_rating tasks folding different ratings: a lost update would drop one.
    agg.add(n + 2)


RACES = {
    "trips": Race("trips", _seed_trip, _cancel_or_assign),
    "payments": Race("payments", _seed_payment, _settle),
    "payment_methods": Race("payment_methods", _seed_method, _replace_token),
    "rating_aggregates": Race("rating_aggregates", _seed_aggregate, _fold),
}


@pytest.mark.parametrize("name", RACES)
def test_two_readers_both_save_one_gets_the_conflict(uow_factory: Any, name: str) -> None:
    interleaved(uow_factory, RACES[name])


@pytest.mark.parametrize("name", RACES)
def test_two_open_units_save_one_row_on_postgresql(pg_units: Any, name: str) -> None:
    overlapping(pg_units, RACES[name])


def _open_trip(uow: Any, rider: str, n: int) -> None:
    uow.trips.add(_trip(rider))


def _open_requested_trip(uow: Any, rider: str, n: int) -> None:
    if not uow.trips.open(_trip(rider)):
        raise Conflict(f"rider {rider} may not open a trip")


def _two_requested_trips(uow: Any) -> tuple[str, str, str]:
    driver, a, b = new_id(), _trip(), _trip()
    uow.trips.add(a)
    uow.trips.add(b)
    return driver, a.id, b.id


def _assign_same_driver(uow: Any, ctx: tuple[str, str, str], n: int) -> None:
    trip = uow.trips.get(ctx[n])
    trip.assign(ctx[0], T0 + n)
    uow.trips.save(trip)


def _payment_for(uow: Any, trip_id: str, n: int) -> None:
    uow.payments.add(Payment(trip_id, new_id(), new_id(), 1000 * n, "USD", created_at=T0,
                             updated_at=T0))


def _ledger_line(uow: Any, trip_id: str, n: int) -> None:
    uow.ledger.add(LedgerEntry(trip_id, "platform_fee", "platform", n, "USD", T0))


def _rating(uow: Any, trip_id: str, n: int) -> None:
    uow.ratings.add(Rating(trip_id, "rider", new_id(), new_id(), n, None, T0))


UNIQUE: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any, int], None]]] = {
    "one open trip per rider": (lambda uow: new_id(), _open_trip),
    "one open trip per rider, opened as requested": (lambda uow: new_id(), _open_requested_trip),
    "one live trip per driver": (_two_requested_trips, _assign_same_driver),
    "one payment per trip": (lambda uow: new_id(), _payment_for),
    "one ledger line per trip and kind": (lambda uow: new_id(), _ledger_line),
    "one rating per trip and role": (lambda uow: new_id(), _rating),
}


@pytest.mark.parametrize("rule", UNIQUE)
def test_two_open_units_break_a_uniqueness_rule_on_postgresql(pg_units: Any, rule: str) -> None:
    overlapping_writes(pg_units, *UNIQUE[rule])


def test_an_open_trip_that_breaks_a_unique_rule_leaves_the_unit_usable(pg_units: Any) -> None:
    # An open trip's update may break a unique rule, so it runs in a savepoint: the Conflict
    # leaves the transaction usable (a closed trip's, which cannot, runs without one).
    with pg_units() as uow:
        driver, a, b = _two_requested_trips(uow)
        first = uow.trips.get(a)
        first.assign(driver, T0)
        uow.trips.save(first)
        uow.commit()
    with pg_units() as uow:
        second = uow.trips.get(b)
        second.assign(driver, T0 + 1)
        with pytest.raises(Conflict):
            uow.trips.save(second)
        second = uow.trips.get(b)  # PostgreSQL would refuse this in an aborted transaction
        second.cancel("rider", T0 + 2)
        uow.trips.save(second)
        uow.commit()
    with pg_units(readonly=True) as uow:
        assert uow.trips.get(b).state.value == "cancelled"
        assert uow.trips.get(a).driver_id == driver
