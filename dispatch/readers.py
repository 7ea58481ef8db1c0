"""What a party reads, whichever channel asks: the REST views, the long-poll, the driver's
WebSocket and the rider's event stream all answer with these, so no channel shows more (or
other) than another."""

from __future__ import annotations

from typing import Any

from trips.access import is_party, sees_driver_location, sees_pickup_pin
from trips.fees import rider_cancel_terms
from trips.model import Trip, TripState

from .engine import Engine
from .views import cancel_terms_view, offer_view, trip_view

# The states in which a trip's start still waits for the PIN.
SHOWS_PIN = frozenset({TripState.driver_assigned, TripState.driver_arrived})


def offers_payload(eng: Engine, driver_id: str) -> list[dict[str, Any]]:
    """The driver's pending offers with their trips."""
    return [offer_view(o, t) for o, t in eng.offers_with_trips(driver_id)]


def trip_payload(eng: Engine, trip: Trip, role: str, account_id: str) -> dict[str, Any]:
    """The trip as `role` `account_id` sees it, once `Engine.trip_for` has let them see it
    (its rider, its driver, or a driver it was offered to): the driver's position and the
    pickup PIN only to whom trips.access shows them, and the rider the cancellation terms."""
    shown = sees_driver_location(trip, role, account_id)
    out = trip_view(trip, driver_location(eng, trip) if shown else None)
    if sees_pickup_pin(trip, role, account_id):
        out["pickup_pin"] = trip.pickup_pin
    if role == "driver" and is_party(trip, role, account_id) and trip.pickup_pin is not None:
        # The driver must ask for the rider's PIN at start (the PIN itself is the rider's).
        out["pickup_pin_required"] = trip.state in SHOWS_PIN
    if role == "rider" and is_party(trip, role, account_id):
        # What cancelling costs, for the rider to see before confirming (trips.fees).
        terms = rider_cancel_terms(trip, eng.lifecycle.cancellation)
        if terms is not None:
            out["cancellation"] = cancel_terms_view(terms, trip.currency)
    return out


def driver_location(eng: Engine, trip: Trip) -> tuple[float, float] | None:
    """Where the trip's driver is, from the live index (None: no driver, or not seen)."""
    if trip.driver_id is None:
        return None
    pos = eng.index.snapshot().get(trip.driver_id)
    return None if pos is None else (pos.lat, pos.lng)
