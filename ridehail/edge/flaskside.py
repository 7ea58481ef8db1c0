"""The edge's calls into the Flask app's rules, off the event loop: authentication (the same
bearer-token rules, cache and 401/403 problems as every REST view) and query validation, run
in a request context built from the ASGI scope, in the edge's thread pool.

A refusal comes back as the HTTP response the REST API would have sent (a problem document),
so a client sees the same answer from either side of the edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask
from flask.ctx import RequestContext
from werkzeug.exceptions import HTTPException

from accounts.auth import principal_from_request, token_from_request
from accounts.model import Principal, Role
from accounts.tokens import token_hash
from ridehail.kernel.errors import Problem, problem_response
from ridehail.kernel.throttle import count

from .wsgi import environ

T = TypeVar("T")


@dataclass(frozen=True)
class Refusal(Exception):
    """An HTTP answer instead of the connection: status, headers and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True)
class Caller:
    principal: Principal
    token_hash: str


class EdgeRequestContext(RequestContext):
    """A request context for the edge's own routes, which are not the Flask app's: the URL is
    not matched against the app's rules. Matching it found no rule and kept the NotFound,
    whose traceback held the context in a reference cycle: garbage for the collector at
    every connection's opening."""

    def match_request(self) -> None:
        return None


def in_request(app: Flask, scope: dict[str, Any], fn: Callable[[], T]) -> T:
    """Run `fn` in a Flask request context made from `scope`; a Problem it raises, or an
    HTTP error (the limiter's 429), becomes a Refusal carrying the response the REST API
    would send."""
    with EdgeRequestContext(app, environ(scope, b"")):
        try:
            return fn()
        except (Problem, HTTPException) as exc:
            # A problem, or an HTTP error with the app's own handler (a 429 from the limiter).
            resp = (problem_response(exc) if isinstance(exc, Problem)
                    else app.make_response(app.handle_http_exception(exc)))
            raise Refusal(resp.status_code,
                          [(k.lower().encode("latin-1"), v.encode("latin-1"))
                           for k, v in resp.headers.items()],
                          resp.get_data()) from None


def authenticate(roles: frozenset[Role], what: str) -> Caller:
    """The caller of the current request context, if it has one of `roles` (as `require`
    decides: 401 without a valid token, 403 for another role). A token may come as
    `?access_token=` here: browsers cannot set headers on a WebSocket or an EventSource."""
    principal = principal_from_request(allow_query_token=True)
    if principal.role not in roles:
        raise Problem(403, "Forbidden", f"{what} is for {', '.join(sorted(roles))}, "
                      f"not {principal.role}")
    count("connection_open")
    token = token_from_request(allow_query_token=True)
    assert token is not None  # principal_from_request had one
    return Caller(principal, token_hash(token))


def in_request_refusal(app: Flask, scope: dict[str, Any], fail: Callable[[], None]) -> Refusal:
    """The refusal `fail` raises, as the response the REST API would send."""
    try:
        in_request(app, scope, fail)
    except Refusal as refusal:
        return refusal
    raise AssertionError("fail() must raise a Problem")


def overloaded(app: Flask, scope: dict[str, Any]) -> Refusal:
    """The refusal of a connection beyond the process's maximum."""
    limit = app.extensions["settings"].conn_max_connections

    def fail() -> None:
        raise Problem(503, "Service Unavailable",
                      f"this process holds its maximum of {limit} connections; retry later",
                      headers={"Retry-After": "5"})
    return in_request_refusal(app, scope, fail)
