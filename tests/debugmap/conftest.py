"""Fixtures for the debug map tests (issue 7): an embedded app with a small fleet around
Midtown Manhattan, built through the public REST API so dispatch records are real.

Helpers are imported with `from tests.debugmap.conftest import ...` (importlib import mode).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import app_factory, make_settings
from tests.rides.conftest import (
    DROPOFF,
    PICKUP,
    Account,
    Api,
    go_online,
    long_poll,
    sign_up_driver,
    sign_up_rider,
)

# Drivers placed north of the pickup, ~100 m apart; one far away in Brooklyn.
NEAR = [(PICKUP["lat"] + 0.001 * (i + 1), PICKUP["lng"]) for i in range(4)]
FAR = (40.6782, -73.9442)


@dataclasses.dataclass
class Fleet:
    drivers: list[Account]
    xl: Account
    far: Account
    rider: Account
    trip: dict[str, Any]
    rejected_by: str
    offered_to: str


def admin_token(app: Flask, email: str = "ops@example.com") -> str:
    from accounts.service import create_admin

    token: str = create_admin(app.extensions["uow_factory"], email)
    return token


def build_fleet(api: Api, publish: Callable[[], None]) -> Fleet:
    """Four standard drivers near the pickup, one xl driver there too, one far away; a rider
    requests a trip, the first offered driver rejects, so the trip is offered to the next."""
    drivers = []
    for lat, lng in NEAR:
        d = sign_up_driver(api)
        go_online(api, d, lat, lng)
        drivers.append(d)
    xl = sign_up_driver(api, vehicle_class="xl")
    go_online(api, xl, PICKUP["lat"] - 0.0005, PICKUP["lng"])
    far = sign_up_driver(api)
    go_online(api, far, *FAR)
    publish()
    rider = sign_up_rider(api)
    r = api.post("/v1/trips", rider.token, {"pickup": PICKUP, "dropoff": DROPOFF})
    assert r.status == 201, r.text
    trip = r.body
    by_id = {d.id: d for d in drivers}
    first = _offered_driver(api, drivers)
    offers = long_poll(api, by_id[first], wait=0)
    r = api.post(f"/v1/offers/{offers[0]['id']}/reject", by_id[first].token)
    assert r.status in (200, 204), r.text
    second = _offered_driver(api, [d for d in drivers if d.id != first])
    publish()
    return Fleet(drivers, xl, far, rider, trip, first, second)


def _offered_driver(api: Api, drivers: list[Account]) -> str:
    for d in drivers:
        if long_poll(api, d, wait=0):
            return d.id
    raise AssertionError("no driver holds an offer")


@pytest.fixture
def make_debug_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    # No background threads: the test publishes the index when it wants a new snapshot.
    with app_factory(lambda **o: make_settings(tmp_path, **o), start_background=False) as make:
        yield make


@pytest.fixture
def app(make_debug_app: Callable[..., Flask]) -> Flask:
    return make_debug_app()


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app.test_client())


@pytest.fixture
def fleet(app: Flask, api: Api) -> Fleet:
    return build_fleet(api, app.extensions["dispatch"].index.publish)
