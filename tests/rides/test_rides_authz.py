"""Who may call what on the ride flow: every endpoint by no token, a revoked token, the wrong
role, another rider and another driver -> 401 / 403 / 404, and nothing changed afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask

from accounts.service import create_service
from tests.rides.conftest import (
    DROPOFF,
    PASSWORD,
    PICKUP,
    Account,
    Api,
    check_invariants,
    email,
    go_online,
    long_poll,
    publish,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)


@dataclass
class World:
    rider: Account
    driver: Account
    other_rider: Account
    other_driver: Account
    service: str
    revoked: str
    trip: dict[str, Any]
    offer: dict[str, Any]


def build_world(app: Flask, api: Api) -> World:
    rider, other_rider = sign_up_rider(api), sign_up_rider(api)
    driver, other_driver = sign_up_driver(api), sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    [offer] = long_poll(api, driver, wait=0)
    # The other driver comes online after the offer was made: free, but not offered the trip.
    go_online(api, other_driver, PICKUP["lat"] + 0.001, PICKUP["lng"])
    service = create_service(app.extensions["uow_factory"], "fleet-gateway")
    # A revoked token: log in, then log out.
    mail = email("revoked")
    assert api.post("/v1/riders", json_body={"name": "Gone", "email": mail,
                                             "password": PASSWORD}).status == 201
    token = api.post("/v1/sessions", json_body={"email": mail, "password": PASSWORD}).body["token"]
    assert api.delete("/v1/sessions/current", token).status in (200, 204)
    return World(rider, driver, other_rider, other_driver, service, token, trip, offer)


def endpoints(w: World) -> list[tuple[str, str, Any, set[str]]]:
    """(method, path, body, roles allowed by the route)."""
    t, o = w.trip["id"], w.offer["id"]
    loc = {"lat": PICKUP["lat"], "lng": PICKUP["lng"]}
    return [
        ("PUT", "/v1/drivers/me/status", {"status": "offline"}, {"driver"}),
        ("POST", "/v1/drivers/me/location", loc, {"driver"}),
        ("POST", "/v1/locations", {"updates": [{"driver_id": w.driver.id, **loc}]},
         {"service"}),
        ("GET", f"/v1/vehicles/nearby?lat={loc['lat']}&lng={loc['lng']}", None, {"rider"}),
        ("POST", "/v1/trips", {"pickup": PICKUP, "dropoff": DROPOFF}, {"rider"}),
        ("POST", "/v1/quotes", {"pickup": PICKUP, "dropoff": DROPOFF}, {"rider"}),
        ("GET", "/v1/trips", None, {"rider", "driver"}),
        ("GET", f"/v1/trips/{t}", None, {"rider", "driver"}),
        ("POST", f"/v1/trips/{t}/cancel", None, {"rider", "driver"}),
        ("GET", "/v1/drivers/me/offers", None, {"driver"}),
        ("POST", f"/v1/offers/{o}/accept", None, {"driver"}),
        ("POST", f"/v1/offers/{o}/reject", None, {"driver"}),
        ("POST", f"/v1/trips/{t}/arrive", None, {"driver"}),
        ("POST", f"/v1/trips/{t}/start", None, {"driver"}),
        ("POST", f"/v1/trips/{t}/complete", None, {"driver"}),
    ]


def snapshot(app: Flask, api: Api, w: World) -> dict[str, Any]:
    trip = api.get(f"/v1/trips/{w.trip['id']}", w.rider.token).body
    with app.extensions["uow_factory"](readonly=True) as uow:
        offers = [(o.id, o.state.value, o.version) for o in uow.offers.for_trip(w.trip["id"])]
        drivers = [(s.status.value, s.trip_id, s.version) for s in
                   (uow.drivers.get(w.driver.id), uow.drivers.get(w.other_driver.id))]
        trips = [(t.id, t.state.value) for t in uow.trips.for_rider(w.other_rider.id)]
    return {"trip": trip, "offers": offers, "drivers": drivers, "other_rider_trips": trips}


def is_problem(r: Any) -> bool:
    return str(r.headers.get("Content-Type", "")).startswith("application/problem+json")


def test_the_authorization_matrix_and_nothing_changes(app: Flask, api: Api) -> None:
    w = build_world(app, api)
    before = snapshot(app, api, w)
    callers: dict[str, tuple[str | None, str | None]] = {
        # name -> (token, role)
        "anonymous": (None, None),
        "revoked": (w.revoked, None),
        "garbage": ("x" * 40, None),
        "other_rider": (w.other_rider.token, "rider"),
        "other_driver": (w.other_driver.token, "driver"),
        "service": (w.service, "service"),
    }
    failures = []
    for method, path, body, allowed in endpoints(w):
        for name, (token, role) in callers.items():
            if role is None:
                expected = {401}
            elif role not in allowed:
                expected = {403}
            elif "/v1/trips/" in path or "/v1/offers/" in path:
                expected = {404}  # not theirs: as if it did not exist
            else:
                continue  # allowed on their own resources (e.g. the other driver's status)
            r = api.call(method, path, token, body)
            if r.status not in expected or not is_problem(r):
                failures.append((name, method, path, r.status, r.text[:120]))
            if r.status == 401:
                assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), path
    assert failures == []
    assert snapshot(app, api, w) == before

    # The riders' and drivers' own calls still work: the world was not broken by the above.
    assert api.post(f"/v1/offers/{w.offer['id']}/accept", w.driver.token).status == 200
    check_invariants(app)


def test_after_assignment_only_the_trips_driver_moves_it(app: Flask, api: Api) -> None:
    w = build_world(app, api)
    assert api.post(f"/v1/offers/{w.offer['id']}/accept", w.driver.token).status == 200
    for step in ("arrive", "start", "complete", "cancel"):
        r = api.post(f"/v1/trips/{w.trip['id']}/{step}", w.other_driver.token)
        assert r.status == 404, (step, r.text)
        r = api.post(f"/v1/trips/{w.trip['id']}/{step}", w.other_rider.token)
        assert r.status == (404 if step == "cancel" else 403), (step, r.text)
    # The rider may not drive their own trip.
    assert api.post(f"/v1/trips/{w.trip['id']}/arrive", w.rider.token).status == 403
    seen = api.get(f"/v1/trips/{w.trip['id']}", w.rider.token).body
    assert seen["state"] == "driver_assigned" and seen["driver_id"] == w.driver.id
    assert api.get(f"/v1/trips/{w.trip['id']}", w.other_driver.token).status == 404
    # A driver cannot answer an offer made to someone else, even once it is closed.
    assert api.post(f"/v1/offers/{w.offer['id']}/reject", w.other_driver.token).status == 404
    # And a service account's batch cannot touch a driver who is not online.
    r = api.post("/v1/locations", w.service,
                 {"updates": [{"driver_id": w.other_rider.id, **PICKUP}]})
    assert r.status == 202 and r.body["accepted"] == 0
    assert r.body["rejected"][0]["driver_id"] == w.other_rider.id
