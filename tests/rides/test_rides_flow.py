"""The ride flow end to end over HTTP through the Flask test client (SQLite and PostgreSQL):
sign-ups, drivers online and moving, nearby, request, offers by long-poll, reject and timeout
re-offers, accept, arrive, start, complete; cancels by either party; no_driver_found."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geojson
import pytest
from flask import Flask

from dispatch.vehicle_ids import nearby_vehicle_id
from tests.rides.conftest import (
    DROPOFF,
    PICKUP,
    Account,
    Api,
    await_trip,
    check_invariants,
    go_online,
    long_poll,
    publish,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)


def nearby(app: Flask, api: Api, rider: Account, drivers: list[Account],
           **params: object) -> tuple[list[str], list[dict[str, Any]]]:
    """The drivers nearby lists, in its order, and its features. Nearby shows opaque per-rider
    ids (issue 13, item 10), so they are mapped back here with the server's own function for
    the time buckets around the request; an id none of `drivers` has fails the test."""
    qs = "&".join(f"{k}={v}" for k, v in {"lat": PICKUP["lat"], "lng": PICKUP["lng"],
                                          **params}.items())
    settings, clock = app.extensions["settings"], app.extensions["dispatch"].clock
    before = clock.now()
    r = api.get(f"/v1/vehicles/nearby?{qs}", rider.token)
    after = clock.now()
    assert r.status == 200, r.text
    assert r.headers["Content-Type"].startswith("application/geo+json")
    assert r.body["type"] == "FeatureCollection"
    # Valid GeoJSON by the geojson library's own checks (the view writes plain dicts).
    parsed = geojson.loads(r.text)
    assert parsed.is_valid and all(f.geometry.is_valid for f in parsed.features), parsed.errors()
    known = {nearby_vehicle_id(settings.secret_key, rider.id, d.id, t,
                               settings.nearby_id_rotate_s): d.id
             for d in drivers for t in (before, after)}
    features = r.body["features"]
    for f in features:
        assert f["id"] == f["properties"]["vehicle_id"] and f["id"] in known, f
    return [known[f["id"]] for f in features], features


def nearby_ids(app: Flask, api: Api, rider: Account, drivers: list[Account],
               **params: object) -> list[str]:
    return nearby(app, api, rider, drivers, **params)[0]


def test_whole_ride_with_a_reject_and_a_re_offer(app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    near, far = sign_up_driver(api), sign_up_driver(api)
    go_online(api, near, PICKUP["lat"] + 0.0005, PICKUP["lng"])  # ~55 m
    go_online(api, far, PICKUP["lat"] + 0.0030, PICKUP["lng"])  # ~330 m
    publish(app)

    ids, features = nearby(app, api, rider, [near, far], radius_m=2000)
    assert ids == [near.id, far.id]  # nearest first
    assert features[0]["properties"]["distance_m"] < features[1]["properties"]["distance_m"]
    assert all(f["properties"]["eta_s"] > 0 for f in features)
    assert features[0]["geometry"]["coordinates"] == pytest.approx(
        [PICKUP["lng"], PICKUP["lat"] + 0.0005], abs=1e-6)

    trip = request_trip(api, rider)
    assert trip["state"] == "requested" and trip["rider_id"] == rider.id
    assert trip["fare_estimate"]["amount"] > 0 and trip["fare_estimate"]["currency"] == "USD"

    # The nearest driver has the offer already; the far one has none.
    [offer] = long_poll(api, near, wait=0)
    assert offer["trip_id"] == trip["id"] and offer["state"] == "pending"
    assert offer["pickup"] == PICKUP and offer["dropoff"] == DROPOFF
    assert long_poll(api, far, wait=0) == []
    # An offered driver is no longer shown to riders.
    publish(app)
    assert nearby_ids(app, api, rider, [near, far]) == [far.id]

    rejected = api.post(f"/v1/offers/{offer['id']}/reject", near.token)
    assert rejected.status == 200 and rejected.body["state"] == "rejected"
    [second] = long_poll(api, far, wait=5)
    assert second["trip_id"] == trip["id"] and second["id"] != offer["id"]
    # A rejected offer cannot be accepted afterwards.
    assert api.post(f"/v1/offers/{offer['id']}/accept", near.token).status == 409

    accepted = api.post(f"/v1/offers/{second['id']}/accept", far.token)
    assert accepted.status == 200, accepted.text
    assert accepted.body["state"] == "driver_assigned" and accepted.body["driver_id"] == far.id

    seen = api.get(f"/v1/trips/{trip['id']}", rider.token).body
    assert seen["state"] == "driver_assigned" and seen["driver_id"] == far.id
    assert seen["driver_location"] == pytest.approx(
        {"lat": PICKUP["lat"] + 0.0030, "lng": PICKUP["lng"]}, abs=1e-6)

    assert api.post(f"/v1/trips/{trip['id']}/arrive", far.token).body["state"] \
        == "driver_arrived"
    assert api.post(f"/v1/trips/{trip['id']}/start", far.token).body["state"] == "in_progress"
    # The driver moves on (points milliseconds apart count as GPS jumps: time, not distance).
    for i in range(1, 6):
        r = api.post("/v1/drivers/me/location", far.token,
                     {"lat": PICKUP["lat"] - 0.002 * i, "lng": PICKUP["lng"]})
        assert r.status == 204
    done = api.post(f"/v1/trips/{trip['id']}/complete", far.token)
    assert done.status == 200, done.text
    body = done.body
    assert body["state"] == "completed" and body["fare"]["amount"] > 0
    assert body["distance_m"] >= 0 and body["payment_state"] == "pending"
    assert body["completed_at"] >= body["started_at"] >= body["arrived_at"] \
        >= body["assigned_at"] >= body["requested_at"]

    final = api.get(f"/v1/trips/{trip['id']}", rider.token).body
    assert final["state"] == "completed" and final["fare"] == body["fare"]
    # The driver who rejected it no longer reads it: a driver sees an offered trip only while
    # the offer is pending (issue 13, item 1).
    assert api.get(f"/v1/trips/{trip['id']}", near.token).status == 404
    # Both drivers are available again: a second trip is offered as before.
    publish(app)
    assert set(nearby_ids(app, api, rider, [near, far])) == {near.id, far.id}
    # A finished trip does not move any more.
    assert api.post(f"/v1/trips/{trip['id']}/cancel", rider.token).status == 409
    assert api.post(f"/v1/trips/{trip['id']}/complete", far.token).status == 409
    check_invariants(app)


def test_an_unanswered_offer_expires_and_goes_to_the_next_driver(
    make_app: Callable[..., Flask]
) -> None:
    # The first driver's poll must see the offer before it expires. Alone, the request and that
    # poll take about 12 ms; in a full suite's process they were once over 0.5 s apart (the
    # timeout this test had), so the window is 2 s. The expiry is still waited for.
    app = make_app(offer_timeout_s=2.0)
    api = Api(app.test_client())
    rider = sign_up_rider(api)
    slow, ready = sign_up_driver(api), sign_up_driver(api)
    go_online(api, slow, PICKUP["lat"] + 0.0005, PICKUP["lng"])
    go_online(api, ready, PICKUP["lat"] + 0.0030, PICKUP["lng"])
    publish(app)

    trip = request_trip(api, rider)
    [first] = long_poll(api, slow, wait=0)
    # Nobody answers: the timer expires the offer and the next driver's long-poll wakes.
    [second] = long_poll(api, ready, wait=10)
    assert second["trip_id"] == trip["id"]
    assert api.post(f"/v1/offers/{first['id']}/accept", slow.token).status == 409
    assert api.post(f"/v1/offers/{second['id']}/accept", ready.token).status == 200
    # The driver who let it expire is free again (and never got it twice).
    assert long_poll(api, slow, wait=0) == []
    publish(app)
    assert nearby_ids(app, api, rider, [slow, ready]) == [slow.id]
    check_invariants(app)


def test_offers_that_all_time_out_end_in_no_driver_found(make_app: Callable[..., Flask]) -> None:
    app = make_app(offer_timeout_s=0.3)
    api = Api(app.test_client())
    rider = sign_up_rider(api)
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    assert trip["state"] == "requested"
    ended = await_trip(api, rider, trip["id"], lambda t: t["state"] != "requested")
    assert ended["state"] == "no_driver_found" and ended["driver_id"] is None
    # The rider may ask again at once: a finished trip does not block the next one.
    again = request_trip(api, rider)
    assert again["id"] != trip["id"]


def test_no_driver_found_when_nobody_is_near_or_of_the_class(app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    standard = sign_up_driver(api, "standard")
    go_online(api, standard, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    premium = request_trip(api, rider, vehicle_class="premium")
    assert premium["state"] == "no_driver_found"
    # Far away (Staten Island, > 20 km): nobody within the dispatch radius.
    far = request_trip(api, rider, pickup={"lat": 40.5795, "lng": -74.1502})
    assert far["state"] == "no_driver_found"
    assert long_poll(api, standard, wait=0) == []


def test_rider_cancels_before_and_after_assignment(app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)

    trip = request_trip(api, rider)
    [offer] = long_poll(api, driver, wait=0)
    r = api.post(f"/v1/trips/{trip['id']}/cancel", rider.token, {"reason": "changed my mind"})
    assert r.status == 200 and r.body["state"] == "cancelled"
    assert r.body["cancelled_by"] == "rider"
    # The pending offer was withdrawn and the driver freed.
    assert long_poll(api, driver, wait=0) == []
    assert api.post(f"/v1/offers/{offer['id']}/accept", driver.token).status == 409

    publish(app)  # the freed driver shows again from the next snapshot
    trip2 = request_trip(api, rider)
    [offer2] = long_poll(api, driver, wait=0)
    assert api.post(f"/v1/offers/{offer2['id']}/accept", driver.token).status == 200
    r = api.post(f"/v1/trips/{trip2['id']}/cancel", rider.token)  # no body: no reason
    assert r.status == 200 and r.body["state"] == "cancelled"
    # The driver is free: arrive on the cancelled trip is refused, a new trip is offered.
    assert api.post(f"/v1/trips/{trip2['id']}/arrive", driver.token).status == 409
    publish(app)
    trip3 = request_trip(api, rider)
    assert long_poll(api, driver, wait=0)[0]["trip_id"] == trip3["id"]
    check_invariants(app)


def test_rider_cannot_cancel_a_trip_in_progress(app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    [offer] = long_poll(api, driver, wait=0)
    api.post(f"/v1/offers/{offer['id']}/accept", driver.token)
    api.post(f"/v1/trips/{trip['id']}/arrive", driver.token)
    api.post(f"/v1/trips/{trip['id']}/start", driver.token)
    r = api.post(f"/v1/trips/{trip['id']}/cancel", rider.token)
    assert r.status == 409 and r.headers["Content-Type"] == "application/problem+json"
    assert api.post(f"/v1/trips/{trip['id']}/cancel", driver.token).status == 409
    assert api.get(f"/v1/trips/{trip['id']}", rider.token).body["state"] == "in_progress"
    # A driver on a trip cannot go offline either.
    assert api.put("/v1/drivers/me/status", driver.token, {"status": "offline"}).status == 409


def test_driver_cancel_before_pickup_re_matches_without_them(app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    first, second = sign_up_driver(api), sign_up_driver(api)
    go_online(api, first, PICKUP["lat"] + 0.0005, PICKUP["lng"])
    go_online(api, second, PICKUP["lat"] + 0.0030, PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    [offer] = long_poll(api, first, wait=0)
    assert api.post(f"/v1/offers/{offer['id']}/accept", first.token).status == 200
    assert api.post(f"/v1/trips/{trip['id']}/arrive", first.token).status == 200

    r = api.post(f"/v1/trips/{trip['id']}/cancel", first.token, {"reason": "flat tyre"})
    assert r.status == 200, r.text
    assert r.body["state"] == "requested" and r.body["driver_id"] is None
    [re_offer] = long_poll(api, second, wait=5)
    assert re_offer["trip_id"] == trip["id"]
    assert long_poll(api, first, wait=0) == []  # never offered back to the one who cancelled
    assert api.post(f"/v1/offers/{re_offer['id']}/accept", second.token).status == 200
    seen = api.get(f"/v1/trips/{trip['id']}", rider.token).body
    assert seen["state"] == "driver_assigned" and seen["driver_id"] == second.id
    # The first driver is free for other riders.
    other = sign_up_rider(api)
    publish(app)
    t2 = request_trip(api, other)
    assert long_poll(api, first, wait=0)[0]["trip_id"] == t2["id"]
    check_invariants(app)


def test_going_offline_withdraws_the_offer_and_re_offers(app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    leaving, staying = sign_up_driver(api), sign_up_driver(api)
    go_online(api, leaving, PICKUP["lat"] + 0.0005, PICKUP["lng"])
    go_online(api, staying, PICKUP["lat"] + 0.0030, PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    [offer] = long_poll(api, leaving, wait=0)
    r = api.put("/v1/drivers/me/status", leaving.token, {"status": "offline"})
    assert r.status == 200 and r.body["online"] is False
    assert long_poll(api, staying, wait=5)[0]["trip_id"] == trip["id"]
    assert api.post(f"/v1/offers/{offer['id']}/accept", leaving.token).status == 409
    # Offline drivers cannot send locations.
    r = api.post("/v1/drivers/me/location", leaving.token, PICKUP)
    assert r.status == 409
    publish(app)
    assert leaving.id not in nearby_ids(app, api, rider, [leaving, staying])


def test_a_rider_has_one_open_trip_at_a_time(app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    r = api.post("/v1/trips", rider.token, {"pickup": PICKUP, "dropoff": DROPOFF})
    assert r.status == 409 and r.headers["Content-Type"] == "application/problem+json"
    assert api.get(f"/v1/trips/{trip['id']}", rider.token).body["state"] == "requested"
