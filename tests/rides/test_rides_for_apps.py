"""What the reference web apps needed of the API (issue 15): the upfront quote before a request
(`POST /v1/quotes`), the caller's trips (`GET /v1/trips`, each party only their own), the
rider's cancellation terms in the trip view (what cancelling costs, before confirming) and the
driver's `pickup_pin_required`; and the apps' pages with their Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask

from tests.rides.conftest import (
    AT_SEA,
    DROPOFF,
    PICKUP,
    Api,
    go_online,
    long_poll,
    publish,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)


def test_a_quote_is_what_the_request_then_locks_in(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    api = Api(app.test_client())
    rider, driver = sign_up_rider(api), sign_up_driver(api)
    r = api.post("/v1/quotes", rider.token, {"pickup": PICKUP, "dropoff": DROPOFF})
    assert r.status == 200, r.text
    quote = r.body
    assert quote["fare_estimate"]["amount"] > 0 and quote["distance_m"] > 1000
    assert quote["surge_multiplier"] == "1.0" or float(quote["surge_multiplier"]) >= 1
    trip = request_trip(api, rider)
    assert trip["fare_estimate"] == quote["fare_estimate"]
    assert trip["surge_multiplier"] == quote["surge_multiplier"]
    # the same field rules as a request: outside the service area names the end, bad
    # coordinates name the coordinate; riders only
    r = api.post("/v1/quotes", rider.token, {"pickup": AT_SEA, "dropoff": DROPOFF})
    assert r.status == 422 and r.body["errors"][0]["field"] == "pickup", r.text
    r = api.post("/v1/quotes", rider.token, {"pickup": {"lat": 91, "lng": 0}, "dropoff": DROPOFF})
    assert r.status == 422 and r.body["errors"][0]["field"] == "pickup.lat", r.text
    both = {"pickup": PICKUP, "dropoff": DROPOFF}
    assert api.post("/v1/quotes", driver.token, both).status == 403
    assert api.post("/v1/quotes", None, both).status == 401


def test_trip_history_lists_only_the_callers_trips(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    api = Api(app.test_client())
    rider, other, driver = sign_up_rider(api), sign_up_rider(api), sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    first = request_trip(api, rider)
    [offer] = long_poll(api, driver, wait=0)
    assert api.post(f"/v1/offers/{offer['id']}/accept", driver.token).status == 200
    for step in ("arrive", "start", "complete"):
        assert api.post(f"/v1/trips/{first['id']}/{step}", driver.token).status == 200
    publish(app)
    second = request_trip(api, rider)  # offered to the driver, not accepted
    theirs = request_trip(api, other)

    mine = api.get("/v1/trips", rider.token)
    assert mine.status == 200, mine.text
    assert [t["id"] for t in mine.body] == [second["id"], first["id"]]
    assert mine.body[1]["state"] == "completed" and mine.body[1]["fare"] is not None
    assert [t["id"] for t in api.get("/v1/trips?limit=1", rider.token).body] == [second["id"]]
    assert [t["id"] for t in api.get("/v1/trips", other.token).body] == [theirs["id"]]
    # a driver lists the trips they were assigned, not those merely offered to them
    assert [t["id"] for t in api.get("/v1/trips", driver.token).body] == [first["id"]]
    for bad in ("0", "101", "x"):
        r = api.get(f"/v1/trips?limit={bad}", rider.token)
        assert r.status == 422 and r.body["errors"][0]["field"] == "limit", r.text
    assert api.get("/v1/trips").status == 401


def test_the_rider_sees_the_cancellation_terms_before_cancelling(
        make_app: Callable[..., Flask]) -> None:
    app = make_app(cancel_fee=700, cancel_fee_after_s=90.0, pickup_pin=True)
    api = Api(app.test_client())
    rider, driver = sign_up_rider(api), sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    # no driver yet: free, and the free period starts at assignment
    assert trip["cancellation"] == {
        "fee": {"amount": 700, "currency": "USD", "display": "7.00"},
        "free_until": None, "free_for_s": 90.0}
    [offer] = long_poll(api, driver, wait=0)
    # the driver sees neither the terms nor (before arrival) a PIN to ask for
    accepted = api.post(f"/v1/offers/{offer['id']}/accept", driver.token).body
    assert "cancellation" not in accepted and "pickup_pin_required" not in accepted
    view = api.get(f"/v1/trips/{trip['id']}", rider.token).body
    assigned = datetime.fromisoformat(view["assigned_at"]).timestamp()
    free_until = datetime.fromisoformat(view["cancellation"]["free_until"]).timestamp()
    assert free_until == assigned + 90.0
    arrived = api.post(f"/v1/trips/{trip['id']}/arrive", driver.token).body
    assert arrived["pickup_pin_required"] is True and "pickup_pin" not in arrived
    pin = api.get(f"/v1/trips/{trip['id']}", rider.token).body["pickup_pin"]
    started = api.post(f"/v1/trips/{trip['id']}/start", driver.token, {"pin": pin}).body
    assert started["pickup_pin_required"] is False
    # once the ride has started the rider can no longer cancel: no terms to show
    assert "cancellation" not in api.get(f"/v1/trips/{trip['id']}", rider.token).body


def test_the_app_pages_are_served_with_a_strict_content_security_policy(api: Api) -> None:
    for page in ("/app/rider", "/app/driver"):
        r = api.get(page)
        assert r.status == 200 and "<script type=\"module\"" in r.text, r.text[:200]
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["Cache-Control"] == "no-store"
    for asset in ("/app/static/js/rider.js", "/app/static/vendor/leaflet.js", "/app/base.geojson"):
        r = api.get(asset)
        assert r.status == 200 and "Content-Security-Policy" in r.headers, asset
    assert api.get("/app/static/../webapps.py").status == 404


def test_the_pages_say_what_to_run_when_leaflet_is_missing(
        api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ridehail.webapps

    monkeypatch.setattr(ridehail.webapps, "VENDOR", tmp_path / "vendor")
    r = api.get("/app/rider")
    assert r.status == 503 and "make web-vendor" in r.body["detail"], r.text
