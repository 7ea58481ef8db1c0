"""Weak passwords are refused at sign-up, after NIST SP 800-63B (issue 13, item 6): at least
8 characters, not on the shipped common-password list, not the email or the name, not only
spaces; no composition rules. Log-in still accepts an existing account's password."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from accounts import password_policy
from accounts.passwords import hash_password


@pytest.mark.parametrize("path", ["/v1/riders", "/v1/drivers"])
@pytest.mark.parametrize("password", ["password", "12345678", "PassWord", " " * 8,
                                      "iloveyou", "qwertyuiop", "EMAIL", "NAME"])
def test_weak_passwords_are_a_422_naming_password(
    client: FlaskClient, rider_body: Any, driver_body: Any, path: str, password: str
) -> None:
    body = rider_body() if path == "/v1/riders" else driver_body()
    body["name"] = "Margaret Hamilton"
    password = {"EMAIL": body["email"].upper(), "NAME": "margaret hamilton"}.get(
        password, password)
    r = client.post(path, json={**body, "password": password})
    assert r.status_code == 422, (password, r.get_data(as_text=True))
    problem = r.get_json()
    assert [e["field"] for e in problem["errors"]] == ["password"]
    assert problem["detail"].startswith("password: ")


def test_a_long_random_passphrase_is_accepted_without_composition_rules(
    client: FlaskClient, rider_body: Any
) -> None:
    r = client.post("/v1/riders", json=rider_body(password="orbit lantern quietly mango"))
    assert r.status_code == 201, r.get_data(as_text=True)


def test_log_in_accepts_an_existing_accounts_weak_password(
    app: Flask, client: FlaskClient, rider_body: Any
) -> None:
    body = rider_body()
    account_id = client.post("/v1/riders", json=body).get_json()["id"]
    # An account from before the policy, whose password is on the list.
    with app.extensions["uow_factory"]() as uow:
        uow.accounts.update_password_hash(account_id, hash_password("password"))
        uow.commit()
    r = client.post("/v1/sessions", json={"email": body["email"], "password": "password"})
    assert r.status_code == 200, r.get_data(as_text=True)


def test_the_shipped_list_is_there_and_lower_case() -> None:
    common = password_policy.common_passwords()
    assert len(common) > 8000
    assert {"password", "12345678", "iloveyou"} <= common
    assert all(p == p.casefold() and len(p) >= 8 for p in common)
