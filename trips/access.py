"""Who may read or act on a trip: one function per rule, used by every caller (REST, WebSocket,
Celery task, debug map). Anyone else is told the trip does not exist (404), never that it is
someone else's."""

from __future__ import annotations

from .model import Trip, TripNotFound, TripState


def is_party(trip: Trip | None, role: str, account_id: str) -> bool:
    """The trip's rider (as a rider) or its assigned driver (as a driver)."""
    if trip is None:
        return False
    if role == "rider":
        return trip.rider_id == account_id
    if role == "driver":
        return trip.driver_id is not None and trip.driver_id == account_id
    return False


def party_trip(trip: Trip | None, trip_id: str, role: str, account_id: str) -> Trip:
    """The trip if `account_id` is its rider or its driver; TripNotFound for anyone else."""
    if trip is None or not is_party(trip, role, account_id):
        raise TripNotFound(trip_id)
    return trip


def may_view(trip: Trip, role: str, account_id: str, *, offer_pending: bool) -> bool:
    """Its rider, its driver, or a driver who holds a pending offer for it (`offer_pending`):
    a driver who rejected the offer, or let it expire, no longer sees the trip."""
    return is_party(trip, role, account_id) or (role == "driver" and offer_pending)


# While a driver is on the way, waiting, or driving: before, nobody needs the position; after,
# it would tell the rider where the driver goes next (and, during the ride, the driver's
# position is the rider's too, which no other party needs).
SHOWS_DRIVER = frozenset({TripState.driver_assigned, TripState.driver_arrived,
                          TripState.in_progress})


def sees_driver_location(trip: Trip, role: str, account_id: str) -> bool:
    """The driver's live position goes to the trip's rider only, and only while the driver is
    coming, waiting or driving them."""
    return role == "rider" and is_party(trip, role, account_id) and trip.state in SHOWS_DRIVER


def sees_pickup_pin(trip: Trip, role: str, account_id: str) -> bool:
    """The pickup PIN goes to the trip's rider only, and only until the trip starts."""
    return (role == "rider" and is_party(trip, role, account_id)
            and trip.pickup_pin is not None
            and trip.state in (TripState.driver_assigned, TripState.driver_arrived))
