"""Payments and ratings over HTTP, with the embedded Celery worker doing the work: a ride
through the API ends with a captured payment in its receipt and both ratings applied."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ridehail.app import create_app, shutdown
from ridehail.settings import Settings

from .helpers import wait_for

PICKUP = {"lat": 40.7580, "lng": -73.9855}
DROPOFF = {"lat": 40.7484, "lng": -73.9857}


@pytest.fixture
def app(any_db_settings: Settings) -> Iterator[Flask]:
    a = create_app(any_db_settings)
    yield a
    shutdown(a)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_up(client: FlaskClient, role: str) -> tuple[str, str]:
    body: dict[str, Any] = {"name": f"Test {role}", "password": "correct horse battery",
                            "email": f"{role}-{uuid.uuid4().hex[:12]}@example.com"}
    if role == "driver":
        body["vehicle"] = {"make": "Toyota", "model": "Prius", "plate": "ABC-1234",
                           "seats": 4, "vehicle_class": "standard"}
    r = client.post(f"/v1/{role}s", json=body)
    assert r.status_code == 201, r.json
    return r.json["id"], r.json["token"]


def ride(client: FlaskClient, rider: str, driver: str) -> str:
    """A whole ride through the API; returns the completed trip's id."""
    assert client.put("/v1/drivers/me/status", json={"status": "online"},
                      headers=h(driver)).status_code == 200
    assert client.post("/v1/drivers/me/location", json=PICKUP,
                       headers=h(driver)).status_code == 204
    wait_for(lambda: client.get("/v1/vehicles/nearby", query_string=PICKUP,
                                headers=h(rider)).json["features"], what="driver indexed")
    r = client.post("/v1/trips", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=h(rider))
    assert r.status_code == 201, r.json
    trip_id = r.json["id"]
    offers = client.get("/v1/drivers/me/offers", query_string={"wait": 10},
                        headers=h(driver)).json
    assert [o["trip_id"] for o in offers] == [trip_id]
    assert client.post(f"/v1/offers/{offers[0]['id']}/accept",
                       headers=h(driver)).status_code == 200
    for step in ("arrive", "start", "complete"):
        r = client.post(f"/v1/trips/{trip_id}/{step}", headers=h(driver))
        assert r.status_code == 200, r.json
    return str(trip_id)


def receipt(client: FlaskClient, trip_id: str, token: str) -> dict[str, Any]:
    r = client.get(f"/v1/trips/{trip_id}/receipt", headers=h(token))
    assert r.status_code == 200, r.json
    return r.json  # type: ignore[no-any-return]


def test_a_ride_is_charged_and_rated_by_the_worker(client: FlaskClient) -> None:
    rider_id, rider = sign_up(client, "rider")
    driver_id, driver = sign_up(client, "driver")
    # No method of their own: the embedded mode charges the sandbox's tok_ok.
    trip_id = ride(client, rider, driver)
    rec = wait_for(lambda: (r := receipt(client, trip_id, rider))["payment"]["state"]
                   == "captured" and r, what="payment captured")
    fare = rec["fare"]["total"]["amount"]
    split = rec["split"]
    assert split["final"] is True
    assert split["rider_charge"]["amount"] == fare
    assert split["driver_payout"]["amount"] + split["platform_fee"]["amount"] == fare
    assert rec["payment"]["attempts"] == 1
    assert sum(line["amount"] for line in rec["ledger"]) == 0
    assert receipt(client, trip_id, driver)["payment"]["state"] == "captured"

    assert client.post(f"/v1/trips/{trip_id}/rating", json={"stars": 4, "comment": "ok"},
                       headers=h(rider)).status_code == 202
    assert client.post(f"/v1/trips/{trip_id}/rating", json={"stars": 5},
                       headers=h(driver)).status_code == 202
    r = client.post(f"/v1/trips/{trip_id}/rating", json={"stars": 1}, headers=h(rider))
    assert r.status_code == 409 and r.mimetype == "application/problem+json"
    wait_for(lambda: all(v["applied"] for v in receipt(client, trip_id, rider)["ratings"]
                         .values()), what="ratings applied")
    mine = client.get("/v1/me/rating", headers=h(driver)).json
    assert (mine["average"], mine["count"], mine["recent_average"]) == (4.0, 1, 4.0)
    assert client.get("/v1/me/rating", headers=h(rider)).json["average"] == 5.0
    assert client.get("/v1/me", headers=h(driver)).json["rating"] == {"average": 4.0, "count": 1}
    # The worker in this process fed the rating to dispatch's ranking.
    assert client.application.extensions["dispatch"].driver_rating[driver_id] == 4.0

    earned = client.get("/v1/drivers/me/earnings", headers=h(driver)).json
    assert earned["balance"]["amount"] == split["driver_payout"]["amount"]
    assert earned["totals"]["trips"] == 1
    assert [t["trip_id"] for t in earned["trips"]] == [trip_id]


def test_receipts_earnings_and_ratings_belong_to_the_trips_parties(client: FlaskClient) -> None:
    _, rider = sign_up(client, "rider")
    _, driver = sign_up(client, "driver")
    _, stranger = sign_up(client, "rider")
    _, other_driver = sign_up(client, "driver")
    trip_id = ride(client, rider, driver)
    for token in (stranger, other_driver):
        r = client.get(f"/v1/trips/{trip_id}/receipt", headers=h(token))
        assert r.status_code == 404
        r = client.post(f"/v1/trips/{trip_id}/rating", json={"stars": 5}, headers=h(token))
        assert r.status_code == 404
    assert client.get("/v1/drivers/me/earnings", headers=h(rider)).status_code == 403
    assert client.get(f"/v1/trips/{trip_id}/receipt").status_code == 401
    assert client.get("/v1/trips/abc/receipt", headers=h(rider)).status_code == 404
    assert client.get("/v1/drivers/me/earnings",
                      headers=h(other_driver)).json["balance"]["amount"] == 0


BAD_RATINGS: list[tuple[Any, str]] = [
    ({"stars": 0}, "stars"), ({"stars": 6}, "stars"), ({"stars": "5"}, "stars"),
    ({"stars": True}, "stars"), ({"stars": 4.5}, "stars"), ({}, "stars"),
    ({"stars": 5, "comment": "x" * 501}, "comment"), ({"stars": 5, "extra": 1}, "extra"),
    ({"stars": 5, "comment": "nul\x00"}, "comment"), ({"stars": 5, "comment": 5}, "comment"),
]
BAD_TOKENS: list[Any] = [
    {"token": ""}, {"token": "visa 4242"}, {"token": "TOK_OK"}, {"token": 42},
    {"token": "tok_" + "a" * 70}, {"token": "tok_unknown"}, {}, {"token": "tok_ok\x00"},
]


def test_bad_input_is_422_naming_the_field(client: FlaskClient) -> None:
    _, rider = sign_up(client, "rider")
    for payload, field in BAD_RATINGS:
        r = client.post("/v1/trips/123/rating", json=payload, headers=h(rider))
        assert r.status_code == 422 and r.mimetype == "application/problem+json", payload
        assert r.json["errors"][0]["field"] == field, payload
    for payload in BAD_TOKENS:
        r = client.post("/v1/riders/me/payment-methods", json=payload, headers=h(rider))
        assert r.status_code == 422 and r.mimetype == "application/problem+json", payload
        assert r.json["errors"][0]["field"] == "token", payload
    r = client.post("/v1/riders/me/payment-methods", data="{", headers=h(rider),
                    content_type="application/json")
    assert r.status_code == 400
    with client.application.extensions["uow_factory"](readonly=True) as uow:
        assert uow.payment_methods.get(client.get("/v1/me", headers=h(rider)).json["id"]) \
            is None  # nothing stored by any of them


def test_rating_a_trip_that_is_not_completed_is_409(client: FlaskClient) -> None:
    _, rider = sign_up(client, "rider")
    r = client.post("/v1/trips", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=h(rider))
    trip_id = r.json["id"]  # no driver online: it ends no_driver_found, never completed
    r = client.post(f"/v1/trips/{trip_id}/rating", json={"stars": 5}, headers=h(rider))
    assert r.status_code == 409 and "completed" in r.json["detail"]


def test_a_declined_rider_is_blocked_until_a_working_method_is_added(
        client: FlaskClient) -> None:
    _, rider = sign_up(client, "rider")
    _, driver = sign_up(client, "driver")
    r = client.post("/v1/riders/me/payment-methods", json={"token": "tok_declined"},
                    headers=h(rider))
    assert r.status_code == 201 and r.json["retried_trips"] == []
    trip_id = ride(client, rider, driver)
    wait_for(lambda: receipt(client, trip_id, rider)["payment"]["state"] == "failed",
             what="payment failed")
    r = client.post("/v1/trips", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=h(rider))
    assert r.status_code == 402 and r.mimetype == "application/problem+json"
    assert r.json["errors"][0]["field"] == "payment_method"
    assert trip_id in r.json["detail"]

    r = client.post("/v1/riders/me/payment-methods", json={"token": "tok_ok"},
                    headers=h(rider))
    assert r.status_code == 201 and r.json["retried_trips"] == [trip_id]
    rec = wait_for(lambda: (x := receipt(client, trip_id, rider))["payment"]["state"]
                   == "captured" and x, what="re-tried payment captured")
    assert rec["payment"]["attempts"] == 2
    r = client.post("/v1/trips", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=h(rider))
    assert r.status_code == 201


def test_dispatch_breaks_eta_ties_by_rating(client: FlaskClient) -> None:
    _, rider = sign_up(client, "rider")
    drivers = [sign_up(client, "driver") for _ in range(2)]
    for _, token in drivers:
        client.put("/v1/drivers/me/status", json={"status": "online"}, headers=h(token))
        client.post("/v1/drivers/me/location", json=PICKUP, headers=h(token))
    wait_for(lambda: len(client.get("/v1/vehicles/nearby", query_string=PICKUP,
                                    headers=h(rider)).json["features"]) == 2,
             what="both drivers indexed")
    # Same place, same ETA: without ratings the lower id would win; the better rating wins.
    (low_id, _), (high_id, high_token) = sorted(drivers, key=lambda d: int(d[0]))
    ranking = client.application.extensions["dispatch"].driver_rating
    ranking[low_id], ranking[high_id] = 3.9, 4.9
    r = client.post("/v1/trips", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=h(rider))
    assert r.status_code == 201
    offers = client.get("/v1/drivers/me/offers", headers=h(high_token)).json
    assert [o["trip_id"] for o in offers] == [r.json["id"]]
