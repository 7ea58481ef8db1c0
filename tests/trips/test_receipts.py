"""Receipts and earnings as use cases on the memory unit of work (no Flask): who may read a
receipt, where its booking fee and split come from, what a driver with no payout sees."""

from __future__ import annotations

import dataclasses

import pytest

from ridehail.units import memory_uow_factory
from trips import receipts
from trips.fares import NYC_YELLOW_2016
from trips.ledger import entries_for
from trips.model import Trip, TripNotFound, TripState
from trips.money import split_payment

RIDER, DRIVER, STRANGER = "11", "22", "33"
TARIFF = dataclasses.replace(NYC_YELLOW_2016, booking_fee=175)


def _units_with_trip(fare: int = 2000) -> tuple[receipts.TripsUnits, Trip]:
    units = memory_uow_factory()
    trip = Trip(id="1", rider_id=RIDER, vehicle_class="standard", pickup_lat=40.75,
                pickup_lng=-73.99, dropoff_lat=40.76, dropoff_lng=-73.98, requested_at=0.0,
                state=TripState.completed, driver_id=DRIVER, fare_estimate=fare,
                fare_final=fare, payment_state="pending")
    with units() as uow:
        uow.trips.add(trip)
        uow.commit()
    return units, trip


def test_only_the_trips_rider_or_driver_gets_its_receipt() -> None:
    units, trip = _units_with_trip()
    assert receipts.receipt(units, trip.id, "rider", RIDER, tariff=TARIFF,
                            commission_bps=2500).trip.id == trip.id
    assert receipts.receipt(units, trip.id, "driver", DRIVER, tariff=TARIFF,
                            commission_bps=2500).trip.id == trip.id
    for role, who in (("rider", STRANGER), ("driver", STRANGER), ("driver", RIDER),
                      ("rider", DRIVER), ("admin", RIDER)):
        with pytest.raises(TripNotFound):
            receipts.receipt(units, trip.id, role, who, tariff=TARIFF, commission_bps=2500)
    with pytest.raises(TripNotFound):
        receipts.receipt(units, "404", "rider", RIDER, tariff=TARIFF, commission_bps=2500)


def test_the_booking_fee_is_the_tariffs_and_the_split_is_projected_until_captured() -> None:
    units, trip = _units_with_trip(fare=2000)
    r = receipts.receipt(units, trip.id, "rider", RIDER, tariff=TARIFF, commission_bps=2500)
    assert r.booking_fee == 175
    assert not r.final
    assert r.split == split_payment(2000, 2500).to_dict()


def test_once_captured_the_split_is_the_ledgers() -> None:
    units, trip = _units_with_trip(fare=2000)
    booked = split_payment(2000, 1000)  # a commission that differs from the one asked with
    with units() as uow:
        for line in entries_for(trip.id, RIDER, DRIVER, booked, "USD", 1.0):
            uow.ledger.add(line)
        uow.commit()
    r = receipts.receipt(units, trip.id, "rider", RIDER, tariff=TARIFF, commission_bps=2500)
    assert r.final
    assert r.split == booked.to_dict()


def test_earnings_of_a_driver_with_no_payout_yet() -> None:
    units, _ = _units_with_trip()
    e = receipts.earnings(units, DRIVER)
    assert (e.trips, e.balance, e.recent, e.currency) == (0, 0, [], "USD")


def test_a_driver_sees_only_their_payout_never_the_riders_payment() -> None:
    from trips.billing import BillingPolicy, charge_trip, set_payment_method
    from trips.sandbox import SandboxProvider

    units, trip = _units_with_trip(fare=2000)
    set_payment_method(units, RIDER, "tok_declined", 1.0)
    out = charge_trip(units, SandboxProvider(units), trip.id, BillingPolicy(2500, None))
    assert out.state == "failed"
    rider = receipts.receipt(units, trip.id, "rider", RIDER, tariff=TARIFF, commission_bps=2500)
    assert rider.payment is not None and rider.payment.last_error == "card declined"
    assert "tok_" not in rider.payment.last_error  # no payment token in any error text
    driver = receipts.receipt(units, trip.id, "driver", DRIVER, tariff=TARIFF,
                              commission_bps=2500)
    assert driver.payment is None
    assert set(driver.split) == {"driver_payout"}


def test_a_drivers_receipt_lists_their_own_ledger_line_only() -> None:
    units, trip = _units_with_trip(fare=2000)
    with units() as uow:
        for line in entries_for(trip.id, RIDER, DRIVER, split_payment(2000, 2500), "USD", 1.0):
            uow.ledger.add(line)
        uow.commit()
    driver = receipts.receipt(units, trip.id, "driver", DRIVER, tariff=TARIFF,
                              commission_bps=2500)
    assert [e.kind for e in driver.ledger] == ["driver_payout"]
    assert driver.split == {"driver_payout": split_payment(2000, 2500).driver_payout}
    rider = receipts.receipt(units, trip.id, "rider", RIDER, tariff=TARIFF, commission_bps=2500)
    assert len(rider.ledger) == 3
