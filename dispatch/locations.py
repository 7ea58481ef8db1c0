"""One parser for a driver's location, whichever way it arrives: `POST /v1/drivers/me/location`,
a row of `POST /v1/locations` and a WebSocket frame all go through `parse_location`, so a
location one channel refuses, every channel refuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from .schemas import LocationIn

MAX_FUTURE_S = 60.0  # a device clock may run a little fast; more is a wrong clock


@dataclass(frozen=True)
class Location:
    lat: float
    lng: float
    heading: float | None
    speed_mps: float | None
    ts: float | None  # epoch seconds; None: "now", the engine stamps it


class BadLocation(ValueError):
    """A location refused, naming the field (a 422 over REST, an error frame on the WebSocket)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_location(data: LocationIn | Mapping[str, Any], now: float,
                   where: str = "") -> Location:
    """Validate {lat, lng, heading?, speed_mps?, ts?} and convert `ts` to epoch seconds.

    `data` is the raw JSON object, or one the request parser already checked against
    `LocationIn` (or a subclass, such as a batch row). `now` is the engine's clock: a `ts`
    needs a zone and may be at most MAX_FUTURE_S ahead of it. `where` prefixes the field
    names (e.g. "updates.3.")."""
    if isinstance(data, LocationIn):
        loc = data
    else:
        try:
            loc = LocationIn.model_validate(data)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"]) or "body"
            raise BadLocation(where + field, err["msg"]) from None
    return Location(loc.lat, loc.lng, loc.heading, loc.speed_mps,
                    _epoch(loc.ts, now, where + "ts"))


def ts_refusal(ts: float, now: float, ttl_s: float, last_ts: float | None) -> str | None:
    """The one freshness rule of a driver's location time, whichever channel it came by (None:
    accepted). A point is refused when it is older than the location TTL (the index would
    forget it at once, and the meter must not take history written after the fact), or older
    than the last point accepted for that driver (back-dated points would redraw a trip the
    meter already saw). The same instant is accepted: a repeat moves nothing."""
    if ts < now - ttl_s:
        return f"older than the location TTL ({ttl_s:g} s)"
    if last_ts is not None and ts < last_ts:
        return "older than this driver's last accepted location"
    return None


def _epoch(ts: datetime | None, now: float, field: str) -> float | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        raise BadLocation(field, "needs a time zone (e.g. Z)")
    value = ts.timestamp()
    if value > now + MAX_FUTURE_S:
        raise BadLocation(field, f"more than {MAX_FUTURE_S:.0f} s in the future")
    return value
