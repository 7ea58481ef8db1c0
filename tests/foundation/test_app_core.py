from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask, session
from flask.testing import FlaskClient

from ridehail.app import create_app, shutdown
from ridehail.settings import Settings


@pytest.fixture
def app(sqlite_settings: Settings) -> Iterator[Flask]:
    app = create_app(sqlite_settings, start_background=False)
    yield app
    shutdown(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def test_no_cookie_session_is_opened_or_set(app: Flask, client: FlaskClient) -> None:
    # Bearer tokens only: no request builds Flask's signed cookie session, none sets a cookie.
    with app.test_request_context("/health"), pytest.raises(RuntimeError,
                                                           match="session is unavailable"):
        session["who"] = "someone"
    assert "Set-Cookie" not in client.get("/health").headers


def test_health(client: FlaskClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_unknown_path_is_problem_json_404(client: FlaskClient) -> None:
    resp = client.get("/no/such/thing")
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json(force=True)
    assert body["status"] == 404 and body["title"] == "Not Found"


def test_wrong_method_is_problem_json_405_with_allow(client: FlaskClient) -> None:
    resp = client.delete("/health")
    assert resp.status_code == 405
    assert resp.mimetype == "application/problem+json"
    assert "GET" in resp.headers["Allow"]


def test_oversized_body_is_413(app: Flask, client: FlaskClient) -> None:
    @app.post("/echo-size")
    def echo() -> dict[str, int]:
        from flask import request

        return {"n": len(request.data)}

    big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    resp = client.post("/echo-size", data=big, content_type="application/json")
    assert resp.status_code == 413
    assert resp.mimetype == "application/problem+json"


def test_unexpected_error_is_problem_json_500(app: Flask) -> None:
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    resp = app.test_client().get("/boom")
    assert resp.status_code == 500
    assert resp.mimetype == "application/problem+json"
    assert "kaboom" not in resp.get_data(as_text=True)  # internals are logged, not shown


def test_validation_errors_name_the_field(app: Flask) -> None:
    from ridehail.kernel.validation import Body, body

    class Point(Body):
        lat: float
        lng: float

    @app.post("/point")
    @body(Point)
    def point(body: Point) -> dict[str, float]:
        return {"lat": body.lat}

    c = app.test_client()
    ok = c.post("/point", json={"lat": 1.5, "lng": 2})
    assert ok.status_code == 200 and ok.get_json() == {"lat": 1.5}
    bad = c.post("/point", json={"lat": "north", "lng": 2})
    assert bad.status_code == 422
    problem = bad.get_json(force=True)
    assert problem["errors"][0]["field"] == "lat"
    assert problem["detail"].startswith("lat:")
    nan = c.post("/point", data='{"lat": NaN, "lng": 1}', content_type="application/json")
    assert nan.status_code == 422 and nan.get_json(force=True)["errors"][0]["field"] == "lat"
    garbage = c.post("/point", data="{not json", content_type="application/json")
    assert garbage.status_code == 400 and garbage.mimetype == "application/problem+json"
    form = c.post("/point", data={"lat": "1", "lng": "2"})  # a form, not JSON
    assert form.status_code == 400 and form.get_json(force=True)["errors"][0]["field"] == "body"
    empty = c.post("/point", data=b"", content_type="application/json")
    assert empty.status_code == 400 and "needs a JSON body" in empty.get_json(force=True)["detail"]


def test_metrics_count_requests_per_endpoint(client: FlaskClient) -> None:
    for _ in range(3):
        client.get("/health")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'ridehail_http_requests_total{endpoint="/health",method="GET",status="200"} 3.0' in text
    assert "ridehail_http_request_duration_seconds_bucket" in text


def test_openapi_is_generated_from_routes(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert "/health" in doc["paths"] and "get" in doc["paths"]["/health"]
    assert doc["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]
