"""Bad input to every accounts endpoint is a 4xx problem naming the field, and stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from accounts.tables import accounts, api_tokens
from ridehail.app import create_app, shutdown
from ridehail.settings import Settings

RIDER = {"name": "Ada", "email": "ada@example.com", "password": "long enough"}
VEHICLE = {"make": "Kia", "model": "Niro", "plate": "K 1", "seats": 4, "vehicle_class": "xl"}
DRIVER = {**RIDER, "email": "dan@example.com", "vehicle": VEHICLE}
LOGIN = {"email": "ada@example.com", "password": "long enough"}


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def with_vehicle(**changes: Any) -> dict[str, Any]:
    return {**DRIVER, "vehicle": {**VEHICLE, **changes}}


# (path, body, the field the problem must name)
CASES: list[tuple[str, Any, str]] = [
    ("/v1/riders", without(RIDER, "name"), "name"),
    ("/v1/riders", {**RIDER, "name": ""}, "name"),
    ("/v1/riders", {**RIDER, "name": "x" * 101}, "name"),
    ("/v1/riders", {**RIDER, "name": 42}, "name"),
    ("/v1/riders", {**RIDER, "name": None}, "name"),
    ("/v1/riders", without(RIDER, "email"), "email"),
    ("/v1/riders", {**RIDER, "email": "not-an-email"}, "email"),
    ("/v1/riders", {**RIDER, "email": "a b@example.com"}, "email"),
    ("/v1/riders", {**RIDER, "email": "a" * 250 + "@example.com"}, "email"),
    ("/v1/riders", {**RIDER, "email": ["ada@example.com"]}, "email"),
    ("/v1/riders", without(RIDER, "password"), "password"),
    ("/v1/riders", {**RIDER, "password": "short"}, "password"),
    ("/v1/riders", {**RIDER, "password": "x" * 129}, "password"),
    ("/v1/riders", {**RIDER, "password": 12345678}, "password"),
    ("/v1/riders", {**RIDER, "phone": "555-1234"}, "phone"),
    ("/v1/riders", {**RIDER, "phone": "+0123456789"}, "phone"),
    ("/v1/riders", {**RIDER, "phone": 14155550123}, "phone"),
    ("/v1/riders", {**RIDER, "role": "admin"}, "role"),  # no self-promotion
    ("/v1/riders", {**RIDER, "name": "x" * 1_000_000}, "name"),
    ("/v1/riders", [RIDER], "body"),
    ("/v1/riders", "ada", "body"),
    ("/v1/drivers", without(DRIVER, "vehicle"), "vehicle"),
    ("/v1/drivers", {**DRIVER, "vehicle": "Kia Niro"}, "vehicle"),
    ("/v1/drivers", with_vehicle(seats=0), "vehicle.seats"),
    ("/v1/drivers", with_vehicle(seats=9), "vehicle.seats"),
    ("/v1/drivers", with_vehicle(seats="4"), "vehicle.seats"),
    ("/v1/drivers", with_vehicle(seats=4.5), "vehicle.seats"),
    ("/v1/drivers", with_vehicle(seats=True), "vehicle.seats"),
    ("/v1/drivers", with_vehicle(seats=2**80), "vehicle.seats"),
    ("/v1/drivers", with_vehicle(vehicle_class="limo"), "vehicle.vehicle_class"),
    ("/v1/drivers", with_vehicle(vehicle_class=None), "vehicle.vehicle_class"),
    ("/v1/drivers", with_vehicle(plate=""), "vehicle.plate"),
    ("/v1/drivers", with_vehicle(plate="P" * 17), "vehicle.plate"),
    ("/v1/drivers", with_vehicle(make="m" * 51), "vehicle.make"),
    ("/v1/drivers", with_vehicle(colour="red"), "vehicle.colour"),
    ("/v1/drivers", {**DRIVER, "vehicle": {k: v for k, v in VEHICLE.items() if k != "model"}},
     "vehicle.model"),
    ("/v1/drivers", {**DRIVER, "email": "nope"}, "email"),
    ("/v1/sessions", without(LOGIN, "password"), "password"),
    ("/v1/sessions", without(LOGIN, "email"), "email"),
    ("/v1/sessions", {**LOGIN, "email": 7}, "email"),
    ("/v1/sessions", {**LOGIN, "password": "x" * 129}, "password"),
    ("/v1/sessions", {**LOGIN, "email": "x" * 255}, "email"),
    ("/v1/sessions", {**LOGIN, "remember": True}, "remember"),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    tmp = tmp_path_factory.mktemp("bad_input")
    settings = Settings.from_env(env={}, database_url=f"sqlite:///{tmp / 'r.db'}", var_dir=tmp,
                                 log_level="WARNING")
    app = create_app(settings, start_background=False)
    yield app
    shutdown(app)


def stored(app: Flask) -> tuple[int, int]:
    # Through a unit of work, not app.extensions: only the uow factory is the accounts' contract.
    with app.extensions["uow_factory"](readonly=True) as uow:
        conn = uow.connection
        n_accounts = conn.execute(select(func.count()).select_from(accounts)).scalar_one()
        n_tokens = conn.execute(select(func.count()).select_from(api_tokens)).scalar_one()
    return n_accounts, n_tokens


@pytest.mark.parametrize(("path", "body", "field"), CASES)
def test_bad_body_is_422_naming_the_field(
    app: Flask, path: str, body: Any, field: str
) -> None:
    client = app.test_client()
    before = stored(app)
    resp = client.post(path, json=body)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    problem = resp.get_json(force=True)
    assert problem["errors"][0]["field"] == field
    assert problem["detail"].startswith(field)
    assert stored(app) == before


@pytest.mark.parametrize("path", ["/v1/riders", "/v1/drivers", "/v1/sessions"])
def test_nan_non_json_empty_and_huge_bodies(app: Flask, path: str) -> None:
    client = app.test_client()
    before = stored(app)
    nan = client.post(path, data=json.dumps({**DRIVER, "name": float("nan"),
                                             "email": float("nan")}),
                      content_type="application/json")
    assert nan.status_code == 422 and nan.get_json(force=True)["errors"][0]["field"] in (
        "name", "email")
    for raw in (b"{not json", b"\xff\xfe", b""):
        resp = client.post(path, data=raw, content_type="application/json")
        assert resp.status_code == 400, raw
        assert resp.get_json(force=True)["errors"][0]["field"] == "body"
    huge = client.post(path, data=b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}',
                       content_type="application/json")
    assert huge.status_code == 413 and huge.mimetype == "application/problem+json"
    assert stored(app) == before


def test_a_good_body_is_stored(app: Flask) -> None:
    # Proves the cases above fail for their stated reason, not for a broken baseline.
    client = app.test_client()
    before = stored(app)
    assert client.post("/v1/riders", json=RIDER).status_code == 201
    assert client.post("/v1/drivers", json=DRIVER).status_code == 201
    assert client.post("/v1/sessions", json=LOGIN).status_code == 200
    assert stored(app) == (before[0] + 2, before[1] + 3)
