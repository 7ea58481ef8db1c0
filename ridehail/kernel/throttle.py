"""Named rate limits on views. A domain view says which limits apply to it; the wiring
(`ridehail/limits.py`) says what each name allows and who it counts (an email, an IP, the
authenticated account), and installs the check as the app's `throttle` extension.

    @bp.post("/v1/trips")
    @require(Role.rider)
    @body(TripIn)
    @throttle("trip_request")
    def request_trip(body: TripIn) -> ...:

Put it below `require` and `body`: a per-account limit needs the authenticated principal,
and a malformed request is refused (400/422) before it counts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app

F = TypeVar("F", bound=Callable[..., Any])

EXTENSION = "throttle"
# The check the wiring installs: raises (a 429) when one of the named limits is exhausted.
Gate = Callable[[tuple[str, ...]], None]


def throttle(*names: str) -> Callable[[F], F]:
    """Count this request against each named limit (the wiring's RIDEHAIL_RATE_LIMIT_*);
    without an installed gate (limiting switched off) the view runs unchecked."""
    if not names:
        raise ValueError("throttle() needs at least one limit name")

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count(*names)
            return fn(*args, **kwargs)

        # functools.wraps shares the inner view's `_openapi` dict with `doc`, `body`, `require`.
        meta = wrapper.__dict__.setdefault("_openapi", {"responses": {}})
        meta.setdefault("responses", {})[429] = "too many requests: retry after Retry-After s"
        meta["throttles"] = tuple(names)
        return wrapper  # type: ignore[return-value]

    return deco


def count(*names: str) -> None:
    """Count the current request against each named limit (raising the 429 when one is
    exhausted): what `throttle` does for a view, for a caller that is not one (the connection
    edge, opening a connection in a request context)."""
    gate: Gate | None = current_app.extensions.get(EXTENSION)
    if gate is not None:
        gate(names)


def throttles_of(view: Any) -> tuple[str, ...]:
    """The limit names a view declared (the wiring checks at start-up that it knows them)."""
    meta = getattr(view, "_openapi", None) or {}
    return tuple(meta.get("throttles", ()))
