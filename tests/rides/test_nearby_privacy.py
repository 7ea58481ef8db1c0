"""Nearby does not let a rider follow a driver (issue 13, item 10): vehicle ids are opaque,
per rider and rotating, never account ids; the radius is capped by configuration."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask

from dispatch.vehicle_ids import nearby_vehicle_id
from ridehail.settings import Settings, SettingsError
from tests.rides.conftest import (
    PICKUP,
    Api,
    go_online,
    publish,
    sign_up_driver,
    sign_up_rider,
)

NEARBY = f"/v1/vehicles/nearby?lat={PICKUP['lat']}&lng={PICKUP['lng']}"


def test_vehicle_ids_are_per_rider_rotate_and_hide_the_driver() -> None:
    def vid(rider: str = "11", driver: str = "22", now: float = 1000.0, secret: str = "k") -> str:
        return nearby_vehicle_id(secret, rider, driver, now, rotate_s=600)

    assert re.fullmatch(r"[A-Za-z0-9_-]{16}", vid())
    assert vid(now=600.0) == vid(now=1199.9)  # stable within a bucket: markers can animate
    assert vid(now=1199.9) != vid(now=1200.0)  # a new id every bucket
    assert vid(rider="12") != vid()  # each rider has their own
    assert vid(driver="23") != vid()
    assert vid(secret="other") != vid()  # only the key holder can compute them


def test_nearby_shows_no_driver_ids_and_each_rider_sees_other_ids(app: Flask, api: Api) -> None:
    ada, bob = sign_up_rider(api), sign_up_rider(api)
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"] + 0.0005, PICKUP["lng"])
    publish(app)
    settings, clock = app.extensions["settings"], app.extensions["dispatch"].clock

    seen = {}
    for rider in (ada, bob):
        before = clock.now()
        r = api.get(NEARBY, rider.token)
        after = clock.now()
        assert r.status == 200, r.text
        [feature] = r.body["features"]
        vid = feature["id"]
        assert feature["properties"]["vehicle_id"] == vid
        assert driver.id not in r.text  # neither as the id nor anywhere else
        assert vid in {nearby_vehicle_id(settings.secret_key, rider.id, driver.id, t,
                                         settings.nearby_id_rotate_s) for t in (before, after)}
        seen[rider.id] = vid
    assert seen[ada.id] != seen[bob.id]


def test_a_radius_above_the_cap_is_a_422_naming_radius_m(app: Flask, api: Api) -> None:
    rider = sign_up_rider(api)
    assert api.get(f"{NEARBY}&radius_m=3000", rider.token).status == 200
    r = api.get(f"{NEARBY}&radius_m=3001", rider.token)
    assert r.status == 422, r.text
    assert r.body["errors"][0]["field"] == "radius_m"
    assert "3000" in r.body["errors"][0]["message"]


def test_the_cap_is_configurable_and_bounds_the_default_radius(
    make_app: Callable[..., Flask]
) -> None:
    app = make_app(nearby_max_radius_m=500.0)
    api = Api(app.test_client())
    rider = sign_up_rider(api)
    near, far = sign_up_driver(api), sign_up_driver(api)
    go_online(api, near, PICKUP["lat"] + 0.0030, PICKUP["lng"])  # ~330 m
    go_online(api, far, PICKUP["lat"] + 0.0090, PICKUP["lng"])  # ~1 km
    publish(app)
    assert api.get(f"{NEARBY}&radius_m=1000", rider.token).status == 422
    r = api.get(NEARBY, rider.token)  # no radius: the default (3000 m) is cut to the cap
    assert r.status == 200, r.text
    assert len(r.body["features"]) == 1


@pytest.mark.parametrize("value", ["0", "-5", "50001", "nan"])
def test_the_cap_setting_is_validated(value: str) -> None:
    with pytest.raises(SettingsError, match="RIDEHAIL_NEARBY_MAX_RADIUS_M"):
        Settings.from_env({"RIDEHAIL_NEARBY_MAX_RADIUS_M": value})
