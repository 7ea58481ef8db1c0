"""Bad input on every ride-flow endpoint: a 4xx problem+json naming the field, never a 500,
and what was stored before is unchanged afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from accounts.service import create_service
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

FUTURE = "2999-01-01T00:00:00Z"


def driver_position(app: Flask, driver_id: str) -> tuple[float, float]:
    publish(app)
    pos = app.extensions["dispatch"].index.snapshot().get(driver_id)
    assert pos is not None
    return (pos.lat, pos.lng)


def fields_of(r: Any) -> list[str]:
    return [e["field"] for e in (r.body or {}).get("errors", [])]


def assert_problem(r: Any, status: int | tuple[int, ...], field: str | None) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status in statuses, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
    assert r.body["status"] == r.status
    if field is not None:
        assert any(f == field or f.startswith(field + ".") for f in fields_of(r)) \
            or field in r.body.get("detail", ""), (field, r.text)


@pytest.fixture
def world(app: Flask, api: Api) -> dict[str, Any]:
    rider = sign_up_rider(api)
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    trip = request_trip(api, rider)
    [offer] = long_poll(api, driver, wait=0)
    other = sign_up_driver(api)
    go_online(api, other, PICKUP["lat"] + 0.001, PICKUP["lng"])
    service = create_service(app.extensions["uow_factory"], "gateway")
    return {"rider": rider, "driver": driver, "other": other, "trip": trip, "offer": offer,
            "service": service}


BODY_CASES: list[tuple[str, str, str, Any, int | tuple[int, ...], str | None]] = [
    # (who, method, path, body (str = raw text), status, field)
    ("other", "PUT", "/v1/drivers/me/status", {}, 422, "status"),
    ("other", "PUT", "/v1/drivers/me/status", {"status": "flying"}, 422, "status"),
    ("other", "PUT", "/v1/drivers/me/status", {"status": 1}, 422, "status"),
    ("other", "PUT", "/v1/drivers/me/status", "not json", 400, "body"),
    ("other", "PUT", "/v1/drivers/me/status", "[]", 422, None),
    ("other", "POST", "/v1/drivers/me/location", {"lat": 91, "lng": 0}, 422, "lat"),
    ("other", "POST", "/v1/drivers/me/location", {"lat": 0, "lng": -181}, 422, "lng"),
    ("other", "POST", "/v1/drivers/me/location", {"lat": "40.7", "lng": -73.9}, 422, "lat"),
    ("other", "POST", "/v1/drivers/me/location", '{"lat": NaN, "lng": -73.9}', 422, "lat"),
    ("other", "POST", "/v1/drivers/me/location", '{"lat": 40.7, "lng": Infinity}', 422, "lng"),
    ("other", "POST", "/v1/drivers/me/location", {"lat": 40.7}, 422, "lng"),
    ("other", "POST", "/v1/drivers/me/location", {"lat": None, "lng": -73.9}, 422, "lat"),
    ("other", "POST", "/v1/drivers/me/location", {**PICKUP, "heading": 400}, 422, "heading"),
    ("other", "POST", "/v1/drivers/me/location", {**PICKUP, "speed_mps": -1}, 422,
     "speed_mps"),
    ("other", "POST", "/v1/drivers/me/location", {**PICKUP, "ts": FUTURE}, 422, "ts"),
    ("other", "POST", "/v1/drivers/me/location", {**PICKUP, "ts": "2020-01-01T00:00:00"},
     422, "ts"),
    ("other", "POST", "/v1/drivers/me/location", {**PICKUP, "ts": "yesterday"}, 422, "ts"),
    ("other", "POST", "/v1/drivers/me/location", {**PICKUP, "altitude": 3}, 422, "altitude"),
    ("other", "POST", "/v1/drivers/me/location", "", 400, "body"),
    ("service", "POST", "/v1/locations", {"updates": []}, 422, "updates"),
    ("service", "POST", "/v1/locations", {}, 422, "updates"),
    ("service", "POST", "/v1/locations",
     {"updates": [{"driver_id": "abc", "lat": 0, "lng": 0}]}, 422, "updates.0.driver_id"),
    ("service", "POST", "/v1/locations",  # larger than any BIGINT id
     {"updates": [{"driver_id": "9" * 19, "lat": 0, "lng": 0}]}, 422, "updates.0.driver_id"),
    ("service", "POST", "/v1/locations",
     {"updates": [{"driver_id": "1", "lat": 0, "lng": 0}] * 3
      + [{"driver_id": "1", "lat": 91, "lng": 0}]}, 422, "updates.3.lat"),
    ("service", "POST", "/v1/locations",
     {"updates": [{"driver_id": "1", "lat": 0, "lng": 0}] * 5001}, 422, "updates"),
    ("service", "POST", "/v1/locations",
     {"updates": [{"driver_id": "1", "lat": 0, "lng": 0, "ts": FUTURE}]}, 422, "ts"),
    ("rider", "POST", "/v1/trips", {"pickup": AT_SEA, "dropoff": DROPOFF}, 422, "pickup"),
    ("rider", "POST", "/v1/trips", {"pickup": PICKUP, "dropoff": AT_SEA}, 422, "dropoff"),
    ("rider", "POST", "/v1/trips", {"dropoff": DROPOFF}, 422, "pickup"),
    ("rider", "POST", "/v1/trips", {"pickup": {"lat": 91, "lng": 0}, "dropoff": DROPOFF},
     422, "pickup.lat"),
    ("rider", "POST", "/v1/trips", {"pickup": PICKUP, "dropoff": {"lat": 40.7, "lng": -181}},
     422, "dropoff.lng"),
    ("rider", "POST", "/v1/trips", {"pickup": PICKUP, "dropoff": DROPOFF,
                                    "vehicle_class": "boat"}, 422, "vehicle_class"),
    ("rider", "POST", "/v1/trips", {"pickup": [40.7, -73.9], "dropoff": DROPOFF}, 422,
     "pickup"),
    ("rider", "POST", "/v1/trips/{trip}/cancel", {"reason": 5}, 422, "reason"),
    ("rider", "POST", "/v1/trips/{trip}/cancel", {"reason": "x" * 201}, 422, "reason"),
    ("rider", "POST", "/v1/trips/{trip}/cancel", "{", 400, "body"),
]

QUERY_CASES: list[tuple[str, str, str]] = [
    # (who, path, field)
    ("rider", "/v1/vehicles/nearby?lat=91&lng=0", "lat"),
    ("rider", "/v1/vehicles/nearby?lat=0&lng=-181", "lng"),
    ("rider", "/v1/vehicles/nearby?lat=nan&lng=0", "lat"),
    ("rider", "/v1/vehicles/nearby?lat=40.7&lng=inf", "lng"),
    ("rider", "/v1/vehicles/nearby?lng=0", "lat"),
    ("rider", "/v1/vehicles/nearby?lat=north&lng=0", "lat"),
    ("rider", "/v1/vehicles/nearby?lat=40.7&lng=-73.9&radius_m=0", "radius_m"),
    ("rider", "/v1/vehicles/nearby?lat=40.7&lng=-73.9&radius_m=1e9", "radius_m"),
    ("rider", "/v1/vehicles/nearby?lat=40.7&lng=-73.9&limit=1000", "limit"),
    ("rider", "/v1/vehicles/nearby?lat=40.7&lng=-73.9&limit=2.5", "limit"),
    ("rider", "/v1/vehicles/nearby?lat=40.7&lng=-73.9&vehicle_class=boat", "vehicle_class"),
    ("driver", "/v1/drivers/me/offers?wait=-1", "wait"),
    ("driver", "/v1/drivers/me/offers?wait=31", "wait"),
    ("driver", "/v1/drivers/me/offers?wait=soon", "wait"),
    ("driver", "/v1/drivers/me/offers?wait=nan", "wait"),
]


def token_of(world: dict[str, Any], who: str) -> str:
    value = world[who]
    return value if isinstance(value, str) else str(value.token)


def test_bad_bodies_are_4xx_naming_the_field_and_change_nothing(
    app: Flask, api: Api, world: dict[str, Any]
) -> None:
    trip_before = api.get(f"/v1/trips/{world['trip']['id']}", world["rider"].token).body
    where_before = driver_position(app, world["other"].id)
    failures = []
    for who, method, path, body, status, field in BODY_CASES:
        path = path.format(trip=world["trip"]["id"])
        if isinstance(body, str):
            r = api.call(method, path, token_of(world, who), data=body,
                         headers={"Content-Type": "application/json"})
        else:
            r = api.call(method, path, token_of(world, who), body)
        try:
            assert_problem(r, status, field)
        except AssertionError as exc:
            failures.append((method, path, body if len(str(body)) < 200 else "...", str(exc)))
    assert failures == []
    assert api.get(f"/v1/trips/{world['trip']['id']}", world["rider"].token).body \
        == trip_before
    assert driver_position(app, world["other"].id) == where_before
    st = api.put("/v1/drivers/me/status", world["other"].token, {"status": "online"}).body
    assert st["status"] == "available"


def test_bad_queries_are_422_naming_the_field(api: Api, world: dict[str, Any]) -> None:
    failures = []
    for who, path, field in QUERY_CASES:
        r = api.get(path, token_of(world, who))
        try:
            assert_problem(r, 422, field)
        except AssertionError as exc:
            failures.append((path, str(exc)))
    assert failures == []


def test_unknown_and_malformed_ids_are_404(api: Api, world: dict[str, Any]) -> None:
    driver, rider = world["driver"].token, world["rider"].token
    for bad in ("1", "384903438553104384", "abc", "-1", "1.5", "9" * 30, "%00", "1%20OR%201",
                "9223372036854775808", "9" * 20, "%C2%B2"):  # > BIGINT; a unicode digit
        for path, token in ((f"/v1/trips/{bad}", rider), (f"/v1/trips/{bad}/cancel", rider),
                            (f"/v1/trips/{bad}/arrive", driver),
                            (f"/v1/offers/{bad}/accept", driver),
                            (f"/v1/offers/{bad}/reject", driver)):
            r = api.call("GET" if path.count("/") == 3 else "POST", path, token)
            assert_problem(r, 404, None)
    # The real offer is still pending for its driver.
    assert long_poll(api, world["driver"], wait=0)[0]["id"] == world["offer"]["id"]


def test_huge_payloads_are_413(app: Flask, api: Api, world: dict[str, Any]) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    big = '{"updates": [' + ",".join(['{"driver_id": "1", "lat": 0, "lng": 0}'] * (
        limit // 38 + 10)) + "]}"
    assert len(big) > limit
    for token, path in ((world["service"], "/v1/locations"),
                        (world["other"].token, "/v1/drivers/me/location"),
                        (world["rider"].token, "/v1/trips")):
        r = api.call("POST", path, token, data=big, headers={"Content-Type": "application/json"})
        assert_problem(r, 413, None)


def test_wrong_methods_are_405_problems(api: Api, world: dict[str, Any]) -> None:
    r = api.call("DELETE", "/v1/trips", world["rider"].token)
    assert_problem(r, 405, None)
    assert "POST" in r.headers.get("Allow", "")
    assert_problem(api.call("GET", f"/v1/offers/{world['offer']['id']}/accept",
                            world["driver"].token), 405, None)
