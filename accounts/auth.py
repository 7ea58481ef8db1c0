"""Bearer-token authentication for Flask views.

    @bp.get("/v1/me")
    @doc("My profile", responses={200: Profile})
    @require(Role.rider, Role.driver)
    def me() -> ...:
        principal = current_principal()

The token is checked in a read-only unit of work (on SQLite it does not take the write lock).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from flask import Flask, current_app, g, request

from ridehail.kernel.errors import Problem

from . import service
from .model import Principal, Role, TokenPolicy
from .tokens import token_hash

F = TypeVar("F", bound=Callable[..., Any])

_CHALLENGE = 'Bearer realm="ridehail"'


class TokenCache:
    """Recently authenticated tokens, kept for `ttl_s` seconds so a busy endpoint does not read
    the token table on every request. A revocation drops the entries at once: in this process
    directly, in the others when the revocations channel delivers it (`forget`; the scaled
    mode relays it through Redis, and `ttl_s` bounds a lost message). 0 turns the cache off. An
    entry never outlives its token's expiry."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._hashes: dict[str, str] = {}  # token hash -> token, for revocations by hash
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        if self.ttl_s <= 0:
            return None
        hit = self._entries.get(token)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # crude but bounded; entries are cheap to rebuild
                self._hashes.clear()
            ttl = self.ttl_s
            if principal.expires_at is not None:
                ttl = min(ttl, (principal.expires_at - datetime.now(UTC)).total_seconds())
            self._entries[token] = (time.monotonic() + ttl, principal)
            self._hashes[token_hash(token)] = token

    def drop(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token, None)
            self._hashes.pop(token_hash(token), None)

    def forget(self, message: dict[str, Any]) -> None:
        """A revocation announced on the revocations channel (by this process or, in the
        scaled mode, another): the token with that hash, or every token of the account."""
        hashed = message.get("token")
        if hashed is None:
            self.drop_account(str(message.get("account_id")))
            return
        with self._lock:
            token = self._hashes.pop(str(hashed), None)
            if token is not None:
                self._entries.pop(token, None)

    def drop_account(self, account_id: str) -> None:
        """Forget every cached token of the account ("log out everywhere")."""
        with self._lock:
            for token in [t for t, (_, p) in self._entries.items() if p.account_id == account_id]:
                del self._entries[token]
                self._hashes.pop(token_hash(token), None)


# How long a token stays cached when every revocation reaches the cache at once (one process:
# its revocations channel loses no message). `ttl_s` bounds a revocation lost between
# processes; here none is lost, and the bound only limits the cache's age. A driver's
# long-poll comes back every 25 s or so: at 2 s, each one read the token table again.
ONE_PROCESS_TTL_S = 300.0


def install_token_cache(app: Flask, ttl_s: float) -> TokenCache:
    """The app's token cache, forgetting what the app's revocations channel announces; with
    a channel that loses none, entries live ONE_PROCESS_TTL_S (0 still turns the cache off)."""
    channel = app.extensions.get("revocations")
    if ttl_s > 0 and channel is not None and channel.reliable:
        ttl_s = max(ttl_s, ONE_PROCESS_TTL_S)
    cache = TokenCache(ttl_s)
    app.extensions["token_cache"] = cache
    if channel is not None:
        channel.subscribe_all(cache.forget)
    return cache


def token_cache() -> TokenCache:
    cache: TokenCache | None = current_app.extensions.get("token_cache")
    if cache is None:
        settings = current_app.extensions.get("settings")
        cache = TokenCache(getattr(settings, "auth_cache_s", 0.0))
        current_app.extensions["token_cache"] = cache
    return cache


def announce_revoked(account_id: str, token: str | None = None) -> None:
    """After a revocation committed: this process's token cache forgets the token (or, with
    None, every token of the account) at once, and the open connections authenticated with
    it close, in every process (the app's `revocations` channel, relayed through Redis in the
    scaled mode, where the other processes' caches forget it too: `TokenCache.forget`)."""
    message = {"account_id": account_id,
               "token": None if token is None else token_hash(token)}
    channel = current_app.extensions.get("revocations")
    if channel is None:  # an app without the channel: only this cache to tell
        token_cache().forget(message)
    else:  # its subscribers include this process's cache (install_token_cache)
        channel.publish(account_id, message)


def token_policy() -> TokenPolicy:
    """When tokens expire, from the app's settings (RIDEHAIL_TOKEN_*)."""
    settings = current_app.extensions.get("settings")
    if settings is None:
        return TokenPolicy()
    return TokenPolicy(idle_s=settings.token_idle_expiry_s, max_age_s=settings.token_max_age_s,
                       touch_s=settings.token_touch_interval_s)


def unauthorized(detail: str, *, invalid: bool) -> Problem:
    # RFC 6750: a presented-but-bad token gets error="invalid_token"; a missing one does not.
    challenge = f'{_CHALLENGE}, error="invalid_token"' if invalid else _CHALLENGE
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


# The app's budget of refused tokens per client address (installed by ridehail/limits.py;
# absent when rate limiting is off). Every authenticated endpoint and every connection the
# edge opens goes through principal_from_request, so a client replaying or guessing tokens
# is stopped here, whatever it calls.
AUTH_FAILURES = "auth_failures"


class AuthFailures(Protocol):
    def check(self) -> None:
        """Raise the 429 problem when this request's address has used its budget."""

    def failed(self) -> None:
        """Count a refused token against this request's address."""


def token_from_request(allow_query_token: bool = False) -> str | None:
    """The bearer token of this request, or None. `?access_token=` is read only when allowed:
    browsers cannot set headers on a WebSocket, but query strings end up in logs."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("the Authorization header must be 'Bearer <token>'",
                                invalid=True)
        return token.strip()
    if allow_query_token:
        return request.args.get("access_token") or None
    return None


def principal_from_request(allow_query_token: bool = False) -> Principal:
    """The authenticated principal of this request; raises a 401 Problem otherwise. Also
    sets `g.principal`. The WebSocket view calls this with `allow_query_token=True`."""
    token = token_from_request(allow_query_token)
    if token is None:
        raise unauthorized("this endpoint needs a bearer token", invalid=False)
    cache = token_cache()
    principal = cache.get(token)
    if principal is None:
        failures: AuthFailures | None = current_app.extensions.get(AUTH_FAILURES)
        if failures is not None:
            failures.check()  # an address past its budget of refused tokens: 429, no read
        principal = service.authenticate(current_app.extensions["uow_factory"], token,
                                         policy=token_policy())
        if principal is None:
            if failures is not None:
                failures.failed()
            raise unauthorized("the token is unknown, revoked or expired", invalid=True)
        cache.put(token, principal)
    g.principal = principal
    return principal


def require(*roles: Role) -> Callable[[F], F]:
    """Only authenticated callers with one of `roles` (any role when none are given) get in:
    401 without a valid token, 403 with the wrong role."""
    allowed = frozenset(roles)

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = principal_from_request()
            if allowed and principal.role not in allowed:
                raise Problem(
                    403, "Forbidden",
                    f"this endpoint is for {', '.join(sorted(allowed))}, "
                    f"not {principal.role}",
                )
            return fn(*args, **kwargs)

        # For the OpenAPI document: functools.wraps shares the inner view's `_openapi` dict,
        # so `doc` and `body` on either side of this decorator see the same metadata.
        meta = wrapper.__dict__.setdefault("_openapi", {"responses": {}})
        meta["auth"] = True
        meta["roles"] = sorted(allowed)
        return wrapper  # type: ignore[return-value]

    return deco


def current_principal() -> Principal:
    """The principal `require` (or `principal_from_request`) authenticated for this request."""
    principal: Principal | None = g.get("principal")
    if principal is None:
        raise unauthorized("this endpoint needs a bearer token", invalid=False)
    return principal
