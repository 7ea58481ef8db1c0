"""The accounts REST API end to end through the Flask test client (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from accounts import service


def test_rider_signs_up_logs_in_and_sees_their_profile(
    client: FlaskClient, rider_body: Any, bearer: Any
) -> None:
    body = rider_body()
    resp = client.post("/v1/riders", json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    created = resp.get_json()
    assert set(created) == {"id", "token"} and isinstance(created["id"], str)

    me = client.get("/v1/me", headers=bearer(created["token"]))
    assert me.status_code == 200
    profile = me.get_json()
    assert profile["id"] == created["id"] and profile["role"] == "rider"
    assert profile["email"] == body["email"] and profile["phone"] == body["phone"]
    assert profile["name"] == body["name"]
    assert profile["rating"] == {"average": None, "count": 0}
    assert "vehicle" not in profile and "password_hash" not in profile
    created_at = datetime.fromisoformat(profile["created_at"])
    offset = created_at.utcoffset()
    assert offset is not None and offset.total_seconds() == 0

    login = client.post("/v1/sessions",
                        json={"email": body["email"].upper(), "password": body["password"]})
    assert login.status_code == 200
    session = login.get_json()
    assert session["role"] == "rider" and session["id"] == created["id"]
    assert session["token"] != created["token"]
    assert client.get("/v1/me", headers=bearer(session["token"])).status_code == 200


def test_driver_profile_has_the_vehicle(
    client: FlaskClient, driver_body: Any, bearer: Any
) -> None:
    body = driver_body()
    created = client.post("/v1/drivers", json=body).get_json()
    profile = client.get("/v1/me", headers=bearer(created["token"])).get_json()
    assert profile["role"] == "driver" and profile["vehicle"] == body["vehicle"]
    assert profile["phone"] is None
    login = client.post("/v1/sessions", json={"email": body["email"],
                                              "password": body["password"]})
    assert login.get_json()["role"] == "driver"


def test_rating_shows_in_profile(
    app: Flask, client: FlaskClient, driver_body: Any, bearer: Any
) -> None:
    created = client.post("/v1/drivers", json=driver_body()).get_json()
    with app.extensions["uow_factory"]() as uow:
        uow.accounts.add_rating(created["id"], 5)
        uow.accounts.add_rating(created["id"], 4)
        uow.commit()
    profile = client.get("/v1/me", headers=bearer(created["token"])).get_json()
    assert profile["rating"] == {"average": 4.5, "count": 2}


def test_duplicate_email_is_409_whatever_the_case_and_the_first_account_is_unchanged(
    client: FlaskClient, rider_body: Any, driver_body: Any, bearer: Any
) -> None:
    first = rider_body()
    created = client.post("/v1/riders", json=first).get_json()
    for path, body in (
        ("/v1/riders", rider_body(first["email"].upper(), name="Impostor",
                                  password="another password")),
        ("/v1/drivers", driver_body(first["email"].title(), password="another password")),
    ):
        resp = client.post(path, json=body)
        assert resp.status_code == 409
        assert resp.mimetype == "application/problem+json"
        assert resp.get_json()["errors"][0]["field"] == "email"
    profile = client.get("/v1/me", headers=bearer(created["token"])).get_json()
    assert profile["name"] == first["name"] and profile["role"] == "rider"
    ok = client.post("/v1/sessions", json={"email": first["email"],
                                           "password": first["password"]})
    assert ok.status_code == 200
    bad = client.post("/v1/sessions", json={"email": first["email"],
                                            "password": "another password"})
    assert bad.status_code == 401


def test_wrong_password_and_unknown_email_look_the_same(
    client: FlaskClient, rider_body: Any, unique_email: Any
) -> None:
    body = rider_body()
    client.post("/v1/riders", json=body)
    wrong = client.post("/v1/sessions", json={"email": body["email"], "password": "nope nope"})
    unknown = client.post("/v1/sessions", json={"email": unique_email(),
                                                "password": body["password"]})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.mimetype == "application/problem+json"


def test_log_out_revokes_only_that_token(
    client: FlaskClient, rider_body: Any, bearer: Any
) -> None:
    body = rider_body()
    first = client.post("/v1/riders", json=body).get_json()["token"]
    second = client.post("/v1/sessions", json={"email": body["email"],
                                               "password": body["password"]}).get_json()["token"]
    assert client.delete("/v1/sessions/current", headers=bearer(first)).status_code == 204
    revoked = client.get("/v1/me", headers=bearer(first))
    assert revoked.status_code == 401
    assert revoked.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.delete("/v1/sessions/current", headers=bearer(first)).status_code == 401
    assert client.get("/v1/me", headers=bearer(second)).status_code == 200


def test_missing_or_garbage_tokens_are_401_with_a_challenge(client: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-real-token"},
                    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "},
                    {"Authorization": "Bearer " + "x" * 5000}, {"Authorization": "garbage"}):
        resp = client.get("/v1/me", headers=headers)
        assert resp.status_code == 401, headers
        assert resp.mimetype == "application/problem+json"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # Query-string tokens are only for the WebSocket route.
    assert client.get("/v1/me?access_token=whatever").status_code == 401


def test_wrong_role_is_403(app: Flask, client: FlaskClient, bearer: Any) -> None:
    token = service.create_service(app.extensions["uow_factory"], "gateway")
    resp = client.get("/v1/me", headers=bearer(token))
    assert resp.status_code == 403 and resp.mimetype == "application/problem+json"
    # A service may still log its token out.
    assert client.delete("/v1/sessions/current", headers=bearer(token)).status_code == 204


def test_openapi_documents_the_accounts_routes(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    paths = doc["paths"]
    assert paths["/v1/riders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "201" in paths["/v1/drivers"]["post"]["responses"]
    assert "security" not in paths["/v1/sessions"]["post"]
    assert paths["/v1/me"]["get"]["security"] == [{"bearer": []}]
    assert paths["/v1/sessions/current"]["delete"]["security"] == [{"bearer": []}]
    schemas = doc["components"]["schemas"]
    assert {"RiderSignUp", "DriverSignUp", "VehicleIn", "LogIn", "SignedUp", "Session",
            "Profile"} <= set(schemas)
    assert schemas["VehicleIn"]["properties"]["seats"]["maximum"] == 8
