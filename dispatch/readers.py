"""What a party reads, whichever channel asks: the REST views, the long-poll, the driver's
WebSocket and the rider's event stream all answer with these, so no channel shows more (or
other) than another."""

from __future__ import annotations

from typing import Any

from trips.access import sees_driver_location, sees_pickup_pin
from trips.model import Trip

from .engine import Engine
from .views import offer_view, trip_view


def offers_payload(eng: Engine, driver_id: str) -> list[dict[str, Any]]:
    """The driver's pending offers with their trips."""
    return [offer_view(o, t) for o, t in eng.offers_with_trips(driver_id)]


def trip_payload(eng: Engine, trip: Trip, role: str, account_id: str) -> dict[str, Any]:
    """The trip as `role` `account_id` sees it, once `Engine.trip_for` has let them see it
    (its rider, its driver, or a driver it was offered to): the driver's position and the
    pickup PIN only to whom trips.access shows them."""
    shown = sees_driver_location(trip, role, account_id)
    out = trip_view(trip, driver_location(eng, trip) if shown else None)
    if sees_pickup_pin(trip, role, account_id):
        out["pickup_pin"] = trip.pickup_pin
    return out


def driver_location(eng: Engine, trip: Trip) -> tuple[float, float] | None:
    """Where the trip's driver is, from the live index (None: no driver, or not seen)."""
    if trip.driver_id is None:
        return None
    pos = eng.index.snapshot().get(trip.driver_id)
    return None if pos is None else (pos.lat, pos.lng)
