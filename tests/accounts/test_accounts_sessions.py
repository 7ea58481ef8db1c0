"""Tokens expire (a sliding idle expiry and an absolute lifetime) and "log out everywhere"
revokes them all (issue 13, item 7). Service tests pin the clock; API tests go through Flask."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from accounts import service
from accounts.auth import TokenCache
from accounts.model import Principal, Role, TokenPolicy
from accounts.tokens import token_hash
from ridehail.kernel.units import MemoryStore
from ridehail.settings import Settings, SettingsError
from ridehail.units import UnitFactory, memory_uow_factory

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
POLICY = TokenPolicy(idle_s=30 * 86400, max_age_s=90 * 86400, touch_s=60)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def uow(store: MemoryStore) -> UnitFactory:
    return memory_uow_factory(store)


def _rider(uow: UnitFactory, clock: Clock) -> tuple[str, str]:
    account, token = service.sign_up_rider(uow, name="Ada", email="ada@example.com",
                                           password="a long passphrase", now=clock)
    return account.id, token


def _auth(uow: UnitFactory, token: str, clock: Clock) -> Principal | None:
    return service.authenticate(uow, token, policy=POLICY, now=clock)


def test_an_idle_token_expires_and_each_use_slides_the_expiry(uow: UnitFactory) -> None:
    clock = Clock(T0)
    _, token = _rider(uow, clock)
    clock.at = T0 + 29 * DAY
    assert _auth(uow, token, clock) is not None  # used: the 30 days start again
    clock.at = T0 + 58 * DAY
    assert _auth(uow, token, clock) is not None
    clock.at = T0 + 88 * DAY + timedelta(seconds=1)  # 30 days after the last use
    assert _auth(uow, token, clock) is None


def test_a_busy_token_still_ends_at_its_maximum_age(uow: UnitFactory) -> None:
    clock = Clock(T0)
    _, token = _rider(uow, clock)
    for day in range(1, 90):
        clock.at = T0 + day * DAY
        assert _auth(uow, token, clock) is not None
    clock.at = T0 + 90 * DAY
    assert _auth(uow, token, clock) is None


def test_the_last_use_is_written_at_most_once_per_touch_interval(
    uow: UnitFactory, store: MemoryStore
) -> None:
    clock = Clock(T0)
    _, token = _rider(uow, clock)
    h = token_hash(token)

    def last_used() -> datetime:
        return store.table("api_tokens")[h].last_used_at  # type: ignore[no-any-return]

    clock.at = T0 + timedelta(seconds=59)
    assert _auth(uow, token, clock) is not None
    assert last_used() == T0  # within the interval: no write
    clock.at = T0 + timedelta(seconds=60)
    principal = _auth(uow, token, clock)
    assert last_used() == clock.at
    # The principal says until when it may be cached: the slid idle expiry.
    assert principal is not None and principal.expires_at == clock.at + 30 * DAY


def test_revoke_all_ends_every_session_of_the_account_only(uow: UnitFactory) -> None:
    clock = Clock(T0)
    ada_id, first = _rider(uow, clock)
    _, second = service.log_in(uow, "ada@example.com", "a long passphrase", now=clock)
    _, bob = service.sign_up_rider(uow, name="Bob", email="bob@example.com",
                                   password="another long one", now=clock)
    assert service.revoke_all(uow, ada_id, now=clock) == 2
    assert _auth(uow, first, clock) is None and _auth(uow, second, clock) is None
    assert _auth(uow, bob, clock) is not None


def test_the_cache_never_serves_a_token_past_its_expiry() -> None:
    cache = TokenCache(ttl_s=60.0)
    past = Principal("1", Role.rider, "h", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    cache.put("t", past)
    assert cache.get("t") is None
    later = Principal("1", Role.rider, "h", expires_at=datetime.now(UTC) + DAY)
    cache.put("t", later)
    assert cache.get("t") == later


def test_drop_account_forgets_that_accounts_tokens_only() -> None:
    cache = TokenCache(ttl_s=60.0)
    cache.put("a1", Principal("1", Role.rider, "h1"))
    cache.put("a2", Principal("1", Role.rider, "h2"))
    cache.put("b", Principal("2", Role.rider, "h3"))
    cache.drop_account("1")
    assert cache.get("a1") is None and cache.get("a2") is None
    assert cache.get("b") is not None


# --- through the API ----------------------------------------------------------------------

def test_log_out_everywhere_revokes_every_token_at_once(
    app: Flask, client: FlaskClient, rider_body: Any, bearer: Callable[[str], dict[str, str]]
) -> None:
    body = rider_body()
    first = client.post("/v1/riders", json=body).get_json()["token"]
    second = client.post("/v1/sessions", json={"email": body["email"],
                                                "password": body["password"]}).get_json()["token"]
    other = client.post("/v1/riders", json=rider_body()).get_json()["token"]
    for token in (first, second, other):  # all three now sit in this process's cache
        assert client.get("/v1/me", headers=bearer(token)).status_code == 200
    assert app.extensions["token_cache"].ttl_s > 0  # so the test covers the cache drop

    assert client.delete("/v1/sessions", headers=bearer(second)).status_code == 204
    for token in (first, second):
        r = client.get("/v1/me", headers=bearer(token))
        assert r.status_code == 401 and "invalid_token" in r.headers["WWW-Authenticate"]
    assert client.get("/v1/me", headers=bearer(other)).status_code == 200
    assert client.delete("/v1/sessions", headers=bearer(first)).status_code == 401


def test_an_expired_token_is_a_401_like_a_revoked_one(
    app: Flask, client: FlaskClient, rider_body: Any, bearer: Callable[[str], dict[str, str]]
) -> None:
    body = rider_body()
    assert client.post("/v1/riders", json=body).status_code == 201
    units = app.extensions["uow_factory"]
    idle = app.extensions["settings"].token_idle_expiry_s
    # A token issued, and last used, just over the idle expiry ago.
    _, stale = service.log_in(units, body["email"], body["password"],
                              now=lambda: datetime.now(UTC) - timedelta(seconds=idle + 5))
    r = client.get("/v1/me", headers=bearer(stale))
    assert r.status_code == 401, r.get_data(as_text=True)
    assert "expired" in r.get_json()["detail"]
    assert "invalid_token" in r.headers["WWW-Authenticate"]
    # Its sibling issued now still works; log-in is unaffected.
    _, fresh = service.log_in(units, body["email"], body["password"])
    assert client.get("/v1/me", headers=bearer(fresh)).status_code == 200


def test_the_expiry_is_configurable() -> None:
    with pytest.raises(SettingsError, match="RIDEHAIL_TOKEN_IDLE_EXPIRY_S"):
        Settings.from_env({"RIDEHAIL_TOKEN_IDLE_EXPIRY_S": "0"})
    with pytest.raises(SettingsError, match="RIDEHAIL_TOKEN_TOUCH_INTERVAL_S"):
        Settings.from_env({"RIDEHAIL_TOKEN_IDLE_EXPIRY_S": "30",
                           "RIDEHAIL_TOKEN_TOUCH_INTERVAL_S": "60"})
    s = Settings.from_env({"RIDEHAIL_TOKEN_IDLE_EXPIRY_S": "3600",
                           "RIDEHAIL_TOKEN_MAX_AGE_S": "86400"})
    assert (s.token_idle_expiry_s, s.token_max_age_s) == (3600.0, 86400.0)
