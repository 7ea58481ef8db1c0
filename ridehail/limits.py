"""Rate limiting (issue 13, items 4 and 5): Flask-Limiter, configured from RIDEHAIL_RATE_LIMIT_*.

Views name the limits that apply to them with `ridehail.kernel.throttle.throttle`; this module
says what each name allows (the settings) and whom it counts (the key), and installs the check.
Counters live in memory in the embedded mode (one process) and in Redis in the scaled mode, so
that every API process counts against the same budget. An exhausted limit is a 429
problem+json with Retry-After.

The client IP is `request.remote_addr`. Behind a reverse proxy that is the proxy's address:
wrap the app in werkzeug's ProxyFix (trusting exactly the proxies you run) so that it becomes
the client's. X-Forwarded-For is not read by default: any client can write it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from flask import Flask, Response, current_app, g, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded
from limits import RateLimitItem, parse_many

from accounts.auth import AUTH_FAILURES, current_principal
from accounts.model import normalize_email

from .kernel.errors import Problem, problem_response
from .kernel.logging import get_logger
from .kernel.throttle import EXTENSION, throttles_of
from .settings import Settings

log = get_logger(__name__)

RATE_LIMITED = "https://ridehail.dev/problems/rate-limited"
# Never counted by the general per-IP limit: load balancers and Prometheus poll these.
UNCOUNTED_ENDPOINTS = frozenset({"health", "metrics", "static"})


def client_ip() -> str:
    return request.remote_addr or "unknown"


def email_tried() -> str:
    """The email of a log-in or sign-up body, normalised as accounts stores it: the view's
    `body` decorator has parsed and validated the body (`g.body`) before this runs, so it is
    not read twice; a body without one shares one key."""
    email = getattr(g.get("body"), "email", None)
    return normalize_email(email) if isinstance(email, str) and email.strip() else "?"


def account() -> str:
    """The authenticated account (the throttle sits below `require`)."""
    return current_principal().account_id


# Limits counted where no Flask view runs (the connection edge, in a request context of its
# own): Flask-Limiter only counts requests that matched a view.
ENDPOINTLESS = frozenset({"connection_open"})
# name -> (the setting holding its limit string, what it counts, what the 429 says)
LIMITS: dict[str, tuple[str, Callable[[], str], str]] = {
    "log_in_account": ("rate_limit_log_in_account", email_tried,
                       "too many log-in attempts for this account"),
    "log_in_ip": ("rate_limit_log_in_ip", client_ip, "too many log-in attempts from this address"),
    "sign_up_account": ("rate_limit_sign_up_account", email_tried,
                        "too many sign-ups with this email"),
    "sign_up_ip": ("rate_limit_sign_up_ip", client_ip, "too many sign-ups from this address"),
    "trip_request": ("rate_limit_trip_request", account, "too many trip requests"),
    "quote": ("rate_limit_quote", account, "too many fare quotes"),
    "driver_location": ("rate_limit_driver_location", account, "too many location reports"),
    "location_batch": ("rate_limit_location_batch", account, "too many location batches"),
    # The connection edge counts each opening (WebSocket, long-poll, event stream): holding
    # is cheap, but every opening authenticates and reads, and a reconnect loop is a flood.
    "connection_open": ("rate_limit_connection_open", account, "too many connections opened"),
}


def storage_uri(settings: Settings) -> str:
    """Redis in the scaled mode (shared by every API process), memory otherwise."""
    if not settings.scaled:
        return "memory://"
    assert settings.redis_url is not None
    url = settings.redis_url
    # limits spells a Unix-socket Redis `redis+unix://`.
    return "redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else url


def install_limits(app: Flask, settings: Settings) -> Limiter | None:
    """Create the app's limiter and install the throttle gate; nothing when limiting is off.
    Call after the blueprints are registered: every limit a view names must be known."""
    unknown = {(endpoint, name) for endpoint, view in app.view_functions.items()
               for name in throttles_of(view) if name not in LIMITS}
    if unknown:
        raise RuntimeError(f"views name rate limits nobody configured: {sorted(unknown)}")
    if not settings.rate_limit_enabled:
        return None
    limiter = Limiter(
        key_func=client_ip,
        storage_uri=storage_uri(settings),
        strategy="fixed-window",
        key_prefix="ridehail",
        application_limits=[ApplicationLimit(
            limit_provider=settings.rate_limit_anonymous_ip, key_function=client_ip,
            scope="anonymous_ip", exempt_when=_has_own_limits_or_needs_auth,
            error_message="too many requests from this address")],
    )
    limiter.init_app(app)
    checks = {name: (_check_anywhere if name in ENDPOINTLESS else _check)(
                  limiter, name, getattr(settings, setting), key, message)
              for name, (setting, key, message) in LIMITS.items()}

    def gate(names: tuple[str, ...]) -> None:
        for name in names:
            checks[name]()

    app.extensions[EXTENSION] = gate
    app.extensions[AUTH_FAILURES] = _AuthFailures(limiter, settings.rate_limit_auth_failed_ip)
    app.extensions["ridehail_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, _too_many_requests)
    return limiter


def _check(limiter: Limiter, name: str, limit: str, key: Callable[[], str],
           message: str) -> Callable[[], None]:
    """A function that counts this request against the named limit (raising when exhausted).
    Flask-Limiter's decorator keys decorated limits by the function's qualified name, hence
    one small function per name; shared: the same name on two routes is one budget."""

    def check() -> None:
        return None

    check.__name__ = check.__qualname__ = f"limit_{name}"
    decorated: Callable[[], None] = limiter.shared_limit(
        limit, scope=name, key_func=key, error_message=message)(check)
    return decorated


def _check_anywhere(limiter: Limiter, name: str, limit: str, key: Callable[[], str],
                    message: str) -> Callable[[], None]:
    """The same count for a request no Flask view serves (the edge's connections), which
    Flask-Limiter skips: its storage and fixed windows, used directly."""
    items = parse_many(limit)

    def check() -> None:
        who = key()
        for item in items:
            if not limiter.limiter.hit(item, "ridehail", name, who):
                raise _exhausted(limiter, item, name, who, message)

    return check


def _exhausted(limiter: Limiter, item: RateLimitItem, scope: str, who: str,
               message: str) -> Problem:
    """The 429 for `who` past `item` in `scope`, with Retry-After until its window ends."""
    reset = limiter.limiter.get_window_stats(item, "ridehail", scope, who).reset_time
    return _rate_limited(message, str(item), max(1, math.ceil(reset - time.time())))


class _AuthFailures:
    """Refused tokens per client address (accounts.auth.AuthFailures): counted when a token
    is refused, checked (without counting) before one is looked up."""

    SCOPE = "auth_failed_ip"

    def __init__(self, limiter: Limiter, limit: str) -> None:
        self.limiter = limiter
        self.items = parse_many(limit)

    def check(self) -> None:
        who = client_ip()
        for item in self.items:
            if not self.limiter.limiter.test(item, "ridehail", self.SCOPE, who):
                raise _exhausted(self.limiter, item, self.SCOPE, who,
                                 "too many refused tokens from this address")

    def failed(self) -> None:
        who = client_ip()
        for item in self.items:
            self.limiter.limiter.hit(item, "ridehail", self.SCOPE, who)


def _has_own_limits_or_needs_auth() -> bool:
    """The general per-IP limit counts the public endpoints: the others authenticate (a
    guessed token is hopeless) and have per-account limits where it matters."""
    endpoint = request.endpoint or ""
    if endpoint.rpartition(".")[2] in UNCOUNTED_ENDPOINTS:
        return True
    view = current_app.view_functions.get(endpoint)
    meta = getattr(view, "_openapi", None) or {}
    return bool(meta.get("auth"))


def _too_many_requests(exc: RateLimitExceeded) -> Response:
    limiter: Limiter = current_app.extensions["ridehail_limiter"]
    current = limiter.current_limit
    # Whole seconds until the window that refused this request ends (at least 1).
    retry_after = max(1, math.ceil(current.window[0] - time.time())) if current else 1
    return problem_response(_rate_limited(exc.description or "too many requests",
                                          str(exc.limit.limit), retry_after))


def _rate_limited(what: str, limit: str, retry_after: int) -> Problem:
    log.info("rate limited", path=request.path, limit=limit, retry_after=retry_after)
    return Problem(429, "Too Many Requests", f"{what} ({limit}); retry in {retry_after} s",
                   type_=RATE_LIMITED, headers={"Retry-After": str(retry_after)})
