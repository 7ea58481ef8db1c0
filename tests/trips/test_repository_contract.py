"""The memory and SQL trips repositories keep one contract (memory, SQLite, PostgreSQL): trips,
payments, payment methods, the ledger, the provider's book, ratings and rating aggregates.
Round trips, every query, the uniqueness rules (each a `Conflict`) and rollback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from ridehail.kernel.errors import Conflict
from ridehail.kernel.ids import new_id
from trips.ledger import LedgerEntry
from trips.model import Rating, RatingAggregate, Trip, TripState
from trips.payments import Payment, PaymentMethod, ProviderCharge

Units = Callable[..., Any]
T0 = 1_767_000_000.0


def make_trip(rider_id: str | None = None, **kw: Any) -> Trip:
    fields: dict[str, Any] = {
        "id": new_id(), "rider_id": rider_id or new_id(), "vehicle_class": "standard",
        "pickup_lat": 40.758, "pickup_lng": -73.9855, "dropoff_lat": 40.7484,
        "dropoff_lng": -73.9857, "requested_at": T0, "fare_estimate": 1234, "surge": "1.5"}
    fields.update(kw)
    return Trip(**fields)


def make_payment(trip_id: str, rider_id: str, **kw: Any) -> Payment:
    fields: dict[str, Any] = {"driver_id": new_id(), "amount": 1500, "currency": "USD",
                              "created_at": T0, "updated_at": T0}
    fields.update(kw)
    return Payment(trip_id=trip_id, rider_id=rider_id, **fields)


def store(units: Units, *rows: tuple[str, Any]) -> None:
    with units() as uow:
        for repo, row in rows:
            getattr(uow, repo).add(row)
        uow.commit()


# --- trips -----------------------------------------------------------------------------------

def test_trip_round_trip_and_save_bumps_the_version(uow_factory: Units) -> None:
    trip = make_trip(rejected_drivers=[new_id()], distance_m=1234.5)
    store(uow_factory, ("trips", trip))
    with uow_factory(readonly=True) as uow:
        got = uow.trips.get(trip.id)
        assert uow.trips.get(new_id()) is None
    assert got == trip and got.state is TripState.requested and got.version == 0
    driver = new_id()
    with uow_factory() as uow:
        got = uow.trips.get(trip.id)
        got.assign(driver, T0 + 5)
        uow.trips.save(got)
        assert got.version == 1
        uow.commit()
    with uow_factory() as uow:
        again = uow.trips.get(trip.id)
        assert again == got and again.driver_id == driver and again.version == 1
        # Returned trips are copies: changing one changes nothing stored.
        again.rejected_drivers.append("1")
        again.state = TripState.cancelled
        assert uow.trips.get(trip.id) == got


def test_open_and_live_trip_queries(uow_factory: Units) -> None:
    rider, driver = new_id(), new_id()
    old = make_trip(rider, state=TripState.completed, driver_id=driver)
    current = make_trip(rider, requested_at=T0 + 10)
    store(uow_factory, ("trips", old), ("trips", current))
    with uow_factory(readonly=True) as uow:
        assert uow.trips.open_for_rider(rider) == current
        assert uow.trips.live_for_driver(driver) is None  # completed is not live
        assert uow.trips.open_for_rider(new_id()) is None
    with uow_factory() as uow:
        trip = uow.trips.get(current.id)
        trip.assign(driver, T0 + 11)
        uow.trips.save(trip)
        uow.commit()
    for step in ("arrive", "start"):
        with uow_factory(readonly=True) as uow:
            assert uow.trips.live_for_driver(driver).id == current.id
            assert uow.trips.open_for_rider(rider).id == current.id
        with uow_factory() as uow:
            trip = uow.trips.get(current.id)
            getattr(trip, step)(T0 + 12)
            uow.trips.save(trip)
            uow.commit()
    with uow_factory() as uow:
        trip = uow.trips.get(current.id)
        trip.complete(T0 + 20, distance_m=900.0, fare_final=1500)
        uow.trips.save(trip)
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.trips.live_for_driver(driver) is None
        assert uow.trips.open_for_rider(rider) is None


def test_for_rider_is_newest_first_and_in_states_filters(uow_factory: Units) -> None:
    rider = new_id()
    done = [make_trip(rider, state=TripState.cancelled, requested_at=T0 + i) for i in range(4)]
    other = make_trip(state=TripState.no_driver_found)
    store(uow_factory, *(("trips", t) for t in [done[2], done[0], done[3], done[1], other]))
    with uow_factory(readonly=True) as uow:
        assert [t.id for t in uow.trips.for_rider(rider)] == [t.id for t in reversed(done)]
        assert [t.id for t in uow.trips.for_rider(rider, limit=2)] == [done[3].id, done[2].id]
        assert uow.trips.for_rider(new_id()) == []
        assert uow.trips.for_driver(new_id()) == []
        assert {t.id for t in uow.trips.in_states(["cancelled"])} == {t.id for t in done}
        both = uow.trips.in_states(["cancelled", "no_driver_found"])
        assert {t.id for t in both} == {t.id for t in [*done, other]}
        assert len(uow.trips.in_states(["cancelled"], limit=3)) == 3
        assert uow.trips.in_states(["in_progress"]) == []


def test_for_driver_is_newest_first_and_only_theirs(uow_factory: Units) -> None:
    driver, other = new_id(), new_id()
    mine = [make_trip(state=TripState.completed, driver_id=driver, requested_at=T0 + i)
            for i in range(3)]
    theirs = make_trip(state=TripState.completed, driver_id=other, requested_at=T0 + 9)
    unassigned = make_trip(requested_at=T0 + 10)
    store(uow_factory, *(("trips", t) for t in [mine[1], theirs, mine[2], unassigned, mine[0]]))
    with uow_factory(readonly=True) as uow:
        assert [t.id for t in uow.trips.for_driver(driver)] == [t.id for t in reversed(mine)]
        assert [t.id for t in uow.trips.for_driver(driver, limit=1)] == [mine[2].id]
        assert [t.id for t in uow.trips.for_driver(other)] == [theirs.id]


def test_one_open_trip_per_rider(uow_factory: Units) -> None:
    rider = new_id()
    first = make_trip(rider)
    store(uow_factory, ("trips", first))
    second = make_trip(rider)
    with uow_factory() as uow:
        with pytest.raises(Conflict):
            uow.trips.add(second)
        # The refused insert did not poison the unit (a savepoint on SQL).
        assert uow.trips.get(first.id) is not None
        trip = uow.trips.get(first.id)
        trip.cancel("rider", T0 + 1)
        uow.trips.save(trip)
        uow.trips.add(second)  # the rider's first trip is closed: a new one may open
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.trips.open_for_rider(rider).id == second.id


def test_opening_a_trip_is_refused_by_an_open_trip_or_a_failed_payment(
        uow_factory: Units) -> None:
    busy, blocked, settled = new_id(), new_id(), new_id()
    store(uow_factory, ("trips", make_trip(busy)),
          ("payments", make_payment(new_id(), blocked, state="failed", last_error="declined")),
          ("payments", make_payment(new_id(), settled, state="captured")))
    opened = make_trip(settled, rejected_drivers=[new_id()], pickup_pin="4821")
    with uow_factory() as uow:
        assert uow.trips.open(make_trip(busy)) is False
        assert uow.trips.open(make_trip(blocked)) is False
        assert uow.trips.open(opened) is True
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.trips.get(opened.id) == opened  # every column, the nulls and the JSON too
        assert uow.trips.open_for_rider(blocked) is None
        assert len(uow.trips.for_rider(busy)) == 1


def test_one_live_trip_per_driver(uow_factory: Units) -> None:
    driver = new_id()
    a, b = make_trip(), make_trip()
    a.assign(driver, T0)
    store(uow_factory, ("trips", a), ("trips", b))
    with uow_factory() as uow:
        trip = uow.trips.get(b.id)
        trip.assign(driver, T0 + 1)
        with pytest.raises(Conflict):
            uow.trips.save(trip)
        assert uow.trips.live_for_driver(driver).id == a.id
    with uow_factory(readonly=True) as uow:
        assert uow.trips.get(b.id).state is TripState.requested
        assert uow.trips.get(b.id).version == 0


# --- payments, methods, ledger, provider charges -----------------------------------------------

def test_payment_round_trip_for_rider_and_one_per_trip(uow_factory: Units) -> None:
    rider = new_id()
    p1 = make_payment(new_id(), rider, created_at=T0 + 2)
    p2 = make_payment(new_id(), rider, created_at=T0 + 1, token="tok_ok")
    captured = make_payment(new_id(), rider, state="captured", captured_at=T0 + 3)
    store(uow_factory, ("payments", p1), ("payments", p2), ("payments", captured))
    with uow_factory() as uow:
        assert uow.payments.get(p2.trip_id) == p2
        assert uow.payments.get(new_id()) is None
        assert uow.payments.for_rider(rider, "pending") == [p2, p1]
        assert uow.payments.for_rider(rider, "captured") == [captured]
        assert uow.payments.for_rider(new_id(), "pending") == []
        with pytest.raises(Conflict):
            uow.payments.add(make_payment(p1.trip_id, rider, amount=1))
        got = uow.payments.get(p1.trip_id)
        got.state, got.attempts, got.last_error = "failed", 1, "declined"
        uow.payments.save(got)
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.payments.get(p1.trip_id) == dataclasses.replace(got)
        assert uow.payments.get(p1.trip_id).version == 1
        assert uow.payments.for_rider(rider, "pending") == [p2]


def test_stuck_payments_are_old_pending_ones_and_missing_ones(uow_factory: Units) -> None:
    cutoff = T0 + 100

    def completed(at: float, payment_state: str = "pending") -> Trip:
        return make_trip(state=TripState.completed, driver_id=new_id(), completed_at=at,
                         fare_final=1500, payment_state=payment_state)

    no_row, old_pending, fresh_pending, old_captured, recent_trip, trip_captured = (
        completed(T0 + 1), completed(T0 + 2), completed(T0 + 3), completed(T0 + 4),
        completed(cutoff + 1), completed(T0 + 5, payment_state="captured"))
    # Stored newest first: the answer comes oldest completion first on every backend.
    store(uow_factory, *(("trips", t) for t in [trip_captured, recent_trip, old_captured,
                                                 fresh_pending, old_pending, no_row]),
          ("payments", make_payment(old_pending.id, old_pending.rider_id, updated_at=T0 + 50)),
          ("payments", make_payment(fresh_pending.id, fresh_pending.rider_id,
                                    updated_at=cutoff + 5)),
          ("payments", make_payment(old_captured.id, old_captured.rider_id,
                                    state="captured", updated_at=T0 + 50)))
    with uow_factory(readonly=True) as uow:
        assert uow.payments.stuck(cutoff) == [no_row.id, old_pending.id]
        assert uow.payments.stuck(cutoff, limit=1) == [no_row.id]


def test_payment_methods_round_trip_and_one_per_account(uow_factory: Units) -> None:
    account = new_id()
    store(uow_factory, ("payment_methods", PaymentMethod(account, "tok_ok", T0)))
    with uow_factory() as uow:
        with pytest.raises(Conflict):
            uow.payment_methods.add(PaymentMethod(account, "tok_flaky", T0))
        method = uow.payment_methods.get(account)
        assert method == PaymentMethod(account, "tok_ok", T0)
        method.token, method.updated_at = "tok_declined", T0 + 1
        uow.payment_methods.save(method)
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.payment_methods.get(account) == PaymentMethod(account, "tok_declined",
                                                                  T0 + 1, version=1)
        assert uow.payment_methods.get(new_id()) is None


def test_ledger_lines_queries_totals_and_one_line_per_trip_and_kind(uow_factory: Units) -> None:
    trip_a, trip_b = new_id(), new_id()
    lines = [LedgerEntry(trip_a, "rider_charge", "rider:1", -1500, "USD", T0),
             LedgerEntry(trip_a, "driver_payout", "driver:2", 1200, "USD", T0),
             LedgerEntry(trip_a, "platform_fee", "platform", 300, "USD", T0),
             LedgerEntry(trip_b, "rider_charge", "rider:1", -700, "USD", T0 + 1)]
    store(uow_factory, *(("ledger", e) for e in lines))
    with uow_factory() as uow:
        with pytest.raises(Conflict):
            uow.ledger.add(LedgerEntry(trip_a, "platform_fee", "platform", 1, "USD", T0 + 9))
        assert sorted(uow.ledger.for_trip(trip_a), key=lambda e: e.kind) == sorted(
            lines[:3], key=lambda e: e.kind)
        assert uow.ledger.for_trip(new_id()) == []
        assert uow.ledger.for_account("rider:1") == [lines[3], lines[0]]  # newest first
        assert uow.ledger.for_account("rider:1", limit=1) == [lines[3]]
        assert uow.ledger.totals("rider:1") == (2, -2200)
        assert uow.ledger.totals("platform") == (1, 300)
        assert uow.ledger.totals("nobody") == (0, 0)
        assert uow.ledger.sum_all() == -700
        uow.ledger.add(LedgerEntry(trip_b, "platform_fee", "platform", 700, "USD", T0 + 1))
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.ledger.sum_all() == 0


def test_provider_charges_update_is_a_compare_and_set_on_attempts(uow_factory: Units) -> None:
    rec = ProviderCharge("trip-1-g0", "ch_1", "tok_flaky", 1500, "USD", "error", 1, T0, T0)
    store(uow_factory, ("provider_charges", rec))
    with uow_factory() as uow:
        with pytest.raises(Conflict):
            uow.provider_charges.add(dataclasses.replace(rec, charge_id="ch_2"))
        assert uow.provider_charges.get("trip-1-g0") == rec
        assert uow.provider_charges.get("trip-2-g0") is None
        done = dataclasses.replace(rec, status="captured", attempts=2, updated_at=T0 + 1)
        with pytest.raises(Conflict):
            uow.provider_charges.update(done, seen_attempts=0)
        uow.provider_charges.update(done, seen_attempts=1)
        with pytest.raises(Conflict):
            uow.provider_charges.update(done, seen_attempts=1)
        uow.provider_charges.add(dataclasses.replace(rec, idempotency_key="trip-3-g0"))
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.provider_charges.get("trip-1-g0") == done
        assert uow.provider_charges.count() == 2
        assert uow.provider_charges.count("captured") == 1
        assert uow.provider_charges.count("declined") == 0


# --- ratings and aggregates --------------------------------------------------------------------

def test_ratings_one_per_trip_and_role_applied_once(uow_factory: Units) -> None:
    trip, rider, driver = new_id(), new_id(), new_id()
    by_rider = Rating(trip, "rider", rider, driver, 5, "smooth", T0)
    by_driver = Rating(trip, "driver", driver, rider, 4, None, T0 + 200)
    store(uow_factory, ("ratings", by_rider), ("ratings", by_driver))
    with uow_factory() as uow:
        with pytest.raises(Conflict):
            uow.ratings.add(Rating(trip, "rider", rider, driver, 1, "again", T0 + 1))
        assert uow.ratings.get(trip, "rider") == by_rider
        assert uow.ratings.get(trip, "rider").applied is False
        assert uow.ratings.get(new_id(), "rider") is None
        assert sorted(uow.ratings.for_trip(trip), key=lambda r: r.rater_role) == [
            by_driver, by_rider]
        assert uow.ratings.unapplied(T0 + 100) == [(trip, "rider")]
        assert sorted(uow.ratings.unapplied(T0 + 300)) == [(trip, "driver"), (trip, "rider")]
        assert len(uow.ratings.unapplied(T0 + 300, limit=1)) == 1
        uow.ratings.mark_applied(trip, "rider")
        with pytest.raises(Conflict):
            uow.ratings.mark_applied(trip, "rider")
        with pytest.raises(Conflict):
            uow.ratings.mark_applied(new_id(), "rider")
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.ratings.get(trip, "rider").applied is True
        assert uow.ratings.unapplied(T0 + 300) == [(trip, "driver")]


def test_rating_aggregates_round_trip_and_many(uow_factory: Units) -> None:
    a, b = RatingAggregate(new_id()), RatingAggregate(new_id(), 2, 9, [4, 5])
    store(uow_factory, ("rating_aggregates", a), ("rating_aggregates", b))
    with uow_factory() as uow:
        with pytest.raises(Conflict):
            uow.rating_aggregates.add(RatingAggregate(a.account_id))
        got = uow.rating_aggregates.get(a.account_id)
        got.add(3)
        uow.rating_aggregates.save(got)
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.rating_aggregates.get(a.account_id) == RatingAggregate(
            a.account_id, 1, 3, [3], version=1)
        many = uow.rating_aggregates.many([b.account_id, new_id(), a.account_id])
        assert sorted(many, key=lambda g: g.account_id) == sorted(
            [b, uow.rating_aggregates.get(a.account_id)], key=lambda g: g.account_id)
        assert uow.rating_aggregates.many([]) == []


# --- rollback ----------------------------------------------------------------------------------

def test_an_uncommitted_unit_leaves_nothing(uow_factory: Units) -> None:
    rider = new_id()
    kept = make_trip(rider)
    agg = RatingAggregate(new_id())
    store(uow_factory, ("trips", kept), ("rating_aggregates", agg))
    dropped = make_trip()
    with pytest.raises(RuntimeError), uow_factory() as uow:
        uow.trips.add(dropped)
        trip = uow.trips.get(kept.id)
        trip.cancel("rider", T0 + 1)
        uow.trips.save(trip)
        uow.payments.add(make_payment(kept.id, rider))
        uow.payment_methods.add(PaymentMethod(rider, "tok_ok", T0))
        uow.ledger.add(LedgerEntry(kept.id, "platform_fee", "platform", 5, "USD", T0))
        uow.provider_charges.add(ProviderCharge("k", "c", "tok_ok", 1, "USD", "captured", 1,
                                                T0, T0))
        uow.ratings.add(Rating(kept.id, "rider", rider, new_id(), 5, None, T0))
        got = uow.rating_aggregates.get(agg.account_id)
        got.add(5)
        uow.rating_aggregates.save(got)
        raise RuntimeError("the use case failed half way")
    with uow_factory(readonly=True) as uow:
        assert uow.trips.get(dropped.id) is None
        assert uow.trips.get(kept.id) == kept
        assert uow.trips.open_for_rider(rider) == kept
        assert uow.payments.get(kept.id) is None
        assert uow.payment_methods.get(rider) is None
        assert uow.ledger.sum_all() == 0 and uow.ledger.for_trip(kept.id) == []
        assert uow.provider_charges.count() == 0
        assert uow.ratings.get(kept.id, "rider") is None
        assert uow.rating_aggregates.get(agg.account_id) == agg


def test_a_unit_opened_again_rolls_back_on_its_new_undo_log(uow_factory: Units) -> None:
    # Memory units make their repositories on first use, on the unit's current undo log.
    unit = uow_factory()
    kept, dropped = make_trip(), make_trip()
    with unit as uow:
        uow.trips.add(kept)
        uow.commit()
    with pytest.raises(RuntimeError), unit as uow:
        uow.trips.add(dropped)
        raise RuntimeError("the use case failed half way")
    with uow_factory(readonly=True) as uow:
        assert uow.trips.get(kept.id) == kept
        assert uow.trips.get(dropped.id) is None
        with pytest.raises(AttributeError):
            uow.no_such_repository  # noqa: B018 - the attribute access is the test


def test_a_row_read_shares_no_list_with_the_stored_row(uow_factory: Units) -> None:
    trip = make_trip(rejected_drivers=["d1"])
    store(uow_factory, ("trips", trip))
    with uow_factory(readonly=True) as uow:
        got = uow.trips.get(trip.id)
        got.rejected_drivers.append("d2")
        got.pickup_lat = 0.0
        assert uow.trips.get(trip.id) == trip
