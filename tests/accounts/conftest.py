"""Fixtures for the accounts tests: an app on SQLite and PostgreSQL, request bodies with
unique emails (the PostgreSQL schema is shared by the whole session). The units of work over
memory and SQL are the shared `uow_factory` (tests/conftest.py). Helpers are fixtures because
test modules are imported by path, not as a package."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ridehail.app import create_app, shutdown
from ridehail.settings import Settings


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def rider_body(email: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Ada Rider", "email": email or unique_email("rider"),
                            "password": "correct horse battery", "phone": "+14155550123"}
    body.update(overrides)
    return body


def driver_body(email: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Dan Driver", "email": email or unique_email("driver"),
        "password": "staple battery horse",
        "vehicle": {"make": "Toyota", "model": "Prius", "plate": "ABC-1234", "seats": 4,
                    "vehicle_class": "standard"},
    }
    body.update(overrides)
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(name="unique_email")
def unique_email_fixture() -> Callable[..., str]:
    return unique_email


@pytest.fixture(name="rider_body")
def rider_body_fixture() -> Callable[..., dict[str, Any]]:
    return rider_body


@pytest.fixture(name="driver_body")
def driver_body_fixture() -> Callable[..., dict[str, Any]]:
    return driver_body


@pytest.fixture(name="bearer")
def bearer_fixture() -> Callable[[str], dict[str, str]]:
    return bearer


@pytest.fixture
def app(any_db_settings: Settings) -> Iterator[Flask]:
    app = create_app(any_db_settings, start_background=False)
    yield app
    shutdown(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
