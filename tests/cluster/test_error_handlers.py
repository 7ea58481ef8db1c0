"""Infrastructure errors become 503 problems, never a 500 with a stack trace (no services
needed: the errors are raised by a view of a real app)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from sqlalchemy.exc import IntegrityError, OperationalError

from ridehail.app import create_app, shutdown
from tests.conftest import make_settings


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    a = create_app(make_settings(tmp_path), start_background=False)
    yield a
    shutdown(a)


def _raising(app: Flask, exc: Exception) -> object:
    def view() -> None:
        raise exc

    app.add_url_rule(f"/boom{id(exc)}", f"boom{id(exc)}", view)
    return app.test_client().get(f"/boom{id(exc)}")


def test_dropped_database_connection_is_a_503_problem(app: Flask) -> None:
    exc = OperationalError("SELECT 1", {}, Exception("terminating connection due to "
                                                     "administrator command"),
                           connection_invalidated=True)
    r = _raising(app, exc)
    assert r.status_code == 503 and r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["type"].endswith("database-unavailable") and "retry" in body["detail"]
    assert r.headers["Retry-After"] == "1" and "Traceback" not in r.get_data(as_text=True)


def test_redis_down_is_a_503_problem_naming_redis(app: Flask) -> None:
    r = _raising(app, redis.exceptions.ConnectionError("Connection refused"))
    assert r.status_code == 503
    body = r.get_json()
    assert body["type"].endswith("redis-unavailable") and "Redis" in body["detail"]


def test_other_database_errors_stay_500(app: Flask) -> None:
    r = _raising(app, IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert r.status_code == 500 and "duplicate" not in r.get_data(as_text=True)
