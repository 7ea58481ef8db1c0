"""Fixtures and helpers for the ride-flow tests (issue 4): one small client API over either the
Flask test client (fast, in process) or a real `ridehail serve` subprocess (requests), so the
same scenario code runs against both.

Test modules import the helpers with `from tests.rides.conftest import ...`: under
`--import-mode=importlib` pytest registers this module under that name before it collects them.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from ridehail.settings import Settings
from tests.conftest import app_factory, throwaway_pg_schema

# Midtown Manhattan (inside the default NYC service area) and a short ride south.
PICKUP = {"lat": 40.7580, "lng": -73.9855}
DROPOFF = {"lat": 40.7484, "lng": -73.9857}
# Open Atlantic, outside every borough.
AT_SEA = {"lat": 40.30, "lng": -73.20}
PASSWORD = "correct horse battery"


@dataclass
class Resp:
    status: int
    body: Any
    text: str
    headers: dict[str, str]


class Api:
    """The HTTP calls a client app makes, over a FlaskClient or a base URL."""

    def __init__(self, target: FlaskClient | str) -> None:
        self.target = target
        self.session = requests.Session() if isinstance(target, str) else None

    def call(self, method: str, path: str, token: str | None = None, json_body: Any = None,
             *, data: bytes | str | None = None, headers: dict[str, str] | None = None,
             timeout: float = 30.0) -> Resp:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(self.target, str):
            assert self.session is not None
            r = self.session.request(method, self.target + path, data=data, headers=hdrs,
                                     timeout=timeout)
            raw, status, rh = r.text, r.status_code, dict(r.headers)
        else:
            fr = self.target.open(path, method=method, data=data, headers=hdrs)
            raw, status, rh = fr.get_data(as_text=True), fr.status_code, dict(fr.headers)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return Resp(status, parsed, raw, rh)

    def get(self, path: str, token: str | None = None, **kw: Any) -> Resp:
        return self.call("GET", path, token, **kw)

    def post(self, path: str, token: str | None = None, json_body: Any = None,
             **kw: Any) -> Resp:
        return self.call("POST", path, token, json_body, **kw)

    def put(self, path: str, token: str | None = None, json_body: Any = None,
            **kw: Any) -> Resp:
        return self.call("PUT", path, token, json_body, **kw)

    def delete(self, path: str, token: str | None = None, **kw: Any) -> Resp:
        return self.call("DELETE", path, token, **kw)


@dataclass
class Account:
    id: str
    token: str
    role: str


def email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def sign_up_rider(api: Api) -> Account:
    r = api.post("/v1/riders", json_body={"name": "Ada Rider", "email": email("rider"),
                                          "password": PASSWORD})
    assert r.status == 201, r.text
    return Account(r.body["id"], r.body["token"], "rider")


def sign_up_driver(api: Api, vehicle_class: str = "standard") -> Account:
    r = api.post("/v1/drivers", json_body={
        "name": "Dan Driver", "email": email("driver"), "password": PASSWORD,
        "vehicle": {"make": "Toyota", "model": "Prius", "plate": "ABC-1234", "seats": 4,
                    "vehicle_class": vehicle_class},
    })
    assert r.status == 201, r.text
    return Account(r.body["id"], r.body["token"], "driver")


def go_online(api: Api, driver: Account, lat: float, lng: float) -> None:
    r = api.put("/v1/drivers/me/status", driver.token, {"status": "online"})
    assert r.status == 200 and r.body["online"] is True, r.text
    r = api.post("/v1/drivers/me/location", driver.token, {"lat": lat, "lng": lng})
    assert r.status == 204, r.text


def request_trip(api: Api, rider: Account, pickup: dict[str, float] | None = None,
                 **extra: Any) -> dict[str, Any]:
    r = api.post("/v1/trips", rider.token,
                 {"pickup": pickup or PICKUP, "dropoff": DROPOFF, **extra})
    assert r.status == 201, r.text
    body: dict[str, Any] = r.body
    return body


def long_poll(api: Api, driver: Account, wait: float = 5.0) -> list[dict[str, Any]]:
    r = api.get(f"/v1/drivers/me/offers?wait={wait}", driver.token)
    assert r.status == 200, r.text
    offers: list[dict[str, Any]] = r.body
    return offers


def await_trip(api: Api, who: Account, trip_id: str, until: Callable[[dict[str, Any]], bool],
               timeout: float = 10.0) -> dict[str, Any]:
    """Poll the trip until `until(trip)` holds (bounded: fails with the last state)."""
    deadline = time.monotonic() + timeout
    trip: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = api.get(f"/v1/trips/{trip_id}", who.token)
        assert r.status == 200, r.text
        trip = r.body
        if until(trip):
            return trip
        time.sleep(0.02)
    raise AssertionError(f"trip {trip_id} never reached the condition; last: {trip}")


def publish(app: Flask) -> None:
    """Make locations visible to queries now (instead of at the publisher's next tick)."""
    app.extensions["dispatch"].index.publish()


def check_invariants(app: Flask) -> None:
    """The database-wide invariants of DESIGN.md, read straight from the tables."""
    engine = app.extensions["engine"]
    live = "('driver_assigned', 'driver_arrived', 'in_progress')"
    with engine.connect() as conn:
        two_trips = conn.execute(text(
            f"SELECT driver_id, COUNT(*) FROM trips WHERE state IN {live} "
            "GROUP BY driver_id HAVING COUNT(*) > 1")).all()
        accepted = conn.execute(text(
            "SELECT trip_id, driver_id FROM offers WHERE state = 'accepted'")).all()
        handed_back = {str(r[0]): {str(d) for d in _json_list(r[1])} for r in conn.execute(
            text("SELECT id, rejected_drivers FROM trips"))}
        two_pending = conn.execute(text(
            "SELECT driver_id, COUNT(*) FROM offers WHERE state = 'pending' "
            "GROUP BY driver_id HAVING COUNT(*) > 1")).all()
        # A live trip's driver must be the driver of its one accepted offer.
        mismatched = conn.execute(text(
            f"SELECT t.id FROM trips t WHERE t.state IN {live} AND NOT EXISTS ("
            "SELECT 1 FROM offers o WHERE o.trip_id = t.id AND o.state = 'accepted' "
            "AND o.driver_id = t.driver_id)")).all()
        # A driver the database calls busy points at a live trip that names them.
        busy_without_trip = conn.execute(text(
            "SELECT d.driver_id FROM driver_states d WHERE d.status IN ('en_route', 'on_trip') "
            f"AND NOT EXISTS (SELECT 1 FROM trips t WHERE t.id = d.trip_id "
            f"AND t.driver_id = d.driver_id AND t.state IN {live})")).all()
    # A trip has one accepted offer, plus one per driver who accepted and then cancelled
    # before pickup (the trip was handed back and matched again).
    per_trip: dict[str, list[str]] = {}
    for trip_id, driver_id in accepted:
        per_trip.setdefault(str(trip_id), []).append(str(driver_id))
    two_accepts = [(t, ds) for t, ds in per_trip.items()
                   if len([d for d in ds if d not in handed_back.get(t, set())]) > 1]
    assert two_trips == [], f"drivers with two live trips: {two_trips}"
    assert two_accepts == [], f"trips with two accepted offers: {two_accepts}"
    assert two_pending == [], f"drivers with two pending offers: {two_pending}"
    assert mismatched == [], f"live trips whose driver has no accepted offer: {mismatched}"
    assert busy_without_trip == [], f"busy drivers without a live trip: {busy_without_trip}"


def _json_list(value: Any) -> list[Any]:
    # JSON columns come back parsed from PostgreSQL and as text from raw SQLite queries.
    return list(json.loads(value) if isinstance(value, str) else value or [])


def ride_settings(settings: Settings, **overrides: Any) -> Settings:
    return dataclasses.replace(settings, **overrides)


@pytest.fixture
def make_app(any_db_settings: Settings) -> Iterator[Callable[..., Flask]]:
    """Builds apps (with their timer and publisher threads) on this test's database; several
    calls give several instances on the same database. All are shut down afterwards.

    On PostgreSQL each test gets a schema of its own: the apps' timers sweep expired offers of
    the whole database, and another test's leftover trip would be re-offered to this test's
    drivers, who all wait at the same pickup."""
    fresh = None
    base = any_db_settings
    if base.database_url.startswith("postgresql"):
        fresh = throwaway_pg_schema("rh_rides")
        base = ride_settings(base, database_url=next(fresh))

    def settings_for(**overrides: Any) -> Settings:
        # Offers outlive any test (a loaded CI machine is slow); timeout tests set their own.
        overrides.setdefault("offer_timeout_s", 120.0)
        return ride_settings(base, **overrides)

    with app_factory(settings_for, start_background=True) as make:
        yield make
    if fresh is not None:
        next(fresh, None)  # drops the schema


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app.test_client())
