"""Per-account limits on the ride flow (issue 13, items 4 and 5): a rider's trip requests and
fare quotes, a driver's location reports and a fleet gateway's batches, each a 429 problem+json with
Retry-After once spent. The rider and driver limits under test are the production defaults."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from accounts.service import create_service
from ridehail.settings import Settings
from tests.rides.conftest import (
    DROPOFF,
    PICKUP,
    Api,
    Resp,
    go_online,
    sign_up_driver,
    sign_up_rider,
)


def assert_throttled(r: Resp) -> None:
    assert r.status == 429, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.body["status"] == 429 and r.body["type"].endswith("/rate-limited")
    assert int(r.headers["Retry-After"]) >= 1


def test_a_rider_cannot_flood_trip_requests(make_app: Callable[..., Flask]) -> None:
    # Issue 13, item 4: 60 refused requests from one rider moved the surge. Refused ones
    # count too: the limit is on asking, not on getting.
    app = make_app(rate_limit_trip_request=Settings.rate_limit_trip_request)
    api = Api(app.test_client())
    rider = sign_up_rider(api)
    trip = {"pickup": PICKUP, "dropoff": DROPOFF}
    statuses = [api.post("/v1/trips", rider.token, trip).status for _ in range(60)]
    assert statuses[0] == 201 and 429 in statuses, statuses
    first = statuses.index(429)
    # Accepted (201) or refused (409: an open trip), each counts.
    assert first <= 10 and set(statuses[:first]) <= {201, 409}, statuses
    assert set(statuses[first:]) == {429}
    assert_throttled(api.post("/v1/trips", rider.token, trip))
    # Another rider is not affected.
    assert api.post("/v1/trips", sign_up_rider(api).token, trip).status == 201


def test_a_rider_cannot_flood_fare_quotes(make_app: Callable[..., Flask]) -> None:
    # A quote costs a surge look-up and a fare estimate and stores nothing: cheap, but not
    # free, so a rider's quotes are counted too (refused ones included).
    app = make_app(rate_limit_quote=Settings.rate_limit_quote)
    api = Api(app.test_client())
    rider = sign_up_rider(api)
    body = {"pickup": PICKUP, "dropoff": DROPOFF}
    statuses = [api.post("/v1/quotes", rider.token, body).status for _ in range(70)]
    assert statuses[:60] == [200] * 60 and set(statuses[60:]) == {429}, statuses
    assert_throttled(api.post("/v1/quotes", rider.token, body))
    assert api.post("/v1/quotes", sign_up_rider(api).token, body).status == 200


def test_a_driver_cannot_flood_location_reports(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit_driver_location=Settings.rate_limit_driver_location)
    api = Api(app.test_client())
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])  # one report
    statuses = [api.post("/v1/drivers/me/location", driver.token, PICKUP).status
                for _ in range(200)]
    assert 429 in statuses, statuses
    first = statuses.index(429)
    assert set(statuses[:first]) == {204} and set(statuses[first:]) == {429}
    assert first + 1 < 200
    assert_throttled(api.post("/v1/drivers/me/location", driver.token, PICKUP))
    other = sign_up_driver(api)
    go_online(api, other, PICKUP["lat"], PICKUP["lng"])  # 204: another driver's budget


def test_a_fleet_gateway_cannot_flood_location_batches(make_app: Callable[..., Flask]) -> None:
    app = make_app(rate_limit_location_batch="2/minute")
    api = Api(app.test_client())
    driver = sign_up_driver(api)
    gateway = create_service(app.extensions["uow_factory"], "gateway")
    batch = {"updates": [{"driver_id": driver.id, **PICKUP}]}
    assert api.post("/v1/locations", gateway, batch).status == 202
    assert api.post("/v1/locations", gateway, batch).status == 202
    assert_throttled(api.post("/v1/locations", gateway, batch))
    other = create_service(app.extensions["uow_factory"], "another gateway")
    assert api.post("/v1/locations", other, batch).status == 202
