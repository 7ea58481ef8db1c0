"""Rules the HTTP layer no longer holds, seen through it: the 402 after a failed charge comes
from the trip request use case, and a receipt's booking fee from the engine's tariff."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ridehail.app import create_app, shutdown
from ridehail.settings import Settings
from trips.model import TripState
from trips.payments import Payment

from .helpers import completed_trip
from .test_payments_api import DROPOFF, PICKUP, h, sign_up


@pytest.fixture
def app(any_db_settings: Settings) -> Iterator[Flask]:
    # No worker: the failed payment written below stays failed.
    a = create_app(dataclasses.replace(any_db_settings, embedded_worker=False))
    yield a
    shutdown(a)


def test_a_rider_whose_charge_failed_gets_a_402_payment_failed_problem(app: Flask) -> None:
    client: FlaskClient = app.test_client()
    rider_id, rider = sign_up(client, "rider")
    units = app.extensions["uow_factory"]
    trip = completed_trip(units, rider_id=rider_id, state=TripState.cancelled)
    assert trip.driver_id is not None
    with units() as uow:
        uow.payments.add(Payment(trip.id, rider_id, trip.driver_id, 1234, "USD",
                                 state="failed", last_error="card_declined"))
        uow.commit()
    r = client.post("/v1/trips", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=h(rider))
    assert r.status_code == 402 and r.mimetype == "application/problem+json", r.json
    message = (f"the payment for trip {trip.id} failed (card_declined); "
               "add a working payment method (POST /v1/riders/me/payment-methods)")
    assert r.json == {"type": "/problems/payment-failed", "title": "Payment Required",
                      "status": 402, "detail": f"payment_method: {message}",
                      "errors": [{"field": "payment_method", "message": message}]}
    with units(readonly=True) as uow:
        assert uow.trips.open_for_rider(rider_id) is None  # no trip was opened


def test_the_receipts_booking_fee_is_the_engines_tariffs(app: Flask) -> None:
    client: FlaskClient = app.test_client()
    _, rider = sign_up(client, "rider")
    r = client.post("/v1/trips", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=h(rider))
    assert r.status_code == 201, r.json
    engine = app.extensions["dispatch"]
    engine.tariff = dataclasses.replace(engine.tariff, booking_fee=175)
    r = client.get(f"/v1/trips/{r.json['id']}/receipt", headers=h(rider))
    assert r.status_code == 200, r.json
    assert r.json["fare"]["booking_fee"] == {"amount": 175, "currency": "USD",
                                             "display": "1.75"}


def test_a_drivers_receipt_shows_the_payout_not_the_riders_payment(app: Flask) -> None:
    client: FlaskClient = app.test_client()
    rider_id, rider = sign_up(client, "rider")
    driver_id, driver = sign_up(client, "driver")
    units = app.extensions["uow_factory"]
    trip = completed_trip(units, rider_id=rider_id, driver_id=driver_id)
    with units() as uow:
        uow.payments.add(Payment(trip.id, rider_id, driver_id, 1234, "USD", state="failed",
                                 last_error="card declined", token="tok_declined"))
        uow.commit()
    mine = client.get(f"/v1/trips/{trip.id}/receipt", headers=h(driver))
    assert mine.status_code == 200, mine.json
    assert mine.json["payment"] == {"state": "pending"}
    assert set(mine.json["split"]) == {"driver_payout", "commission_bps", "final"}
    assert "tok_" not in mine.get_data(as_text=True) and "declined" not in mine.get_data(
        as_text=True)
    theirs = client.get(f"/v1/trips/{trip.id}/receipt", headers=h(rider))
    assert theirs.json["payment"]["last_error"] == "card declined"


def test_the_sandboxs_test_hooks_are_off_through_the_api(app: Flask) -> None:
    client: FlaskClient = app.test_client()
    _, rider = sign_up(client, "rider")
    r = client.post("/v1/riders/me/payment-methods", json={"token": "tok_slow"},
                    headers=h(rider))
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "token", r.json
    assert "tok_slow" not in r.json["detail"]
    ok = client.post("/v1/riders/me/payment-methods", json={"token": "tok_declined"},
                     headers=h(rider))
    assert ok.status_code == 201, ok.json  # the sandbox's ordinary test cards still work


def test_a_stalled_capture_needs_the_test_hooks() -> None:
    from ridehail.units import memory_uow_factory
    from trips.sandbox import SandboxProvider

    units = memory_uow_factory()
    off = SandboxProvider(units, slow_s=3600.0)
    assert off.charge("k1", "tok_slow", 100, "USD").amount == 100  # at once, no stall
    with pytest.raises(Exception, match="token"):
        off.check_token("tok_slow")
    SandboxProvider(units, slow_s=0.0, test_hooks=True).check_token("tok_slow")
