"""How trips and offers look on the wire (the ride-flow API and the driver's WebSocket alike).
Plain functions of the domain objects: no Flask, no engine."""

from __future__ import annotations

from typing import Any

from ridehail.kernel.formats import iso, money, quantity
from trips.fees import CancelTerms
from trips.model import Trip

from .model import Offer


def trip_view(trip: Trip, driver_location: tuple[float, float] | None = None) -> dict[str, Any]:
    """A trip; `driver_location` (lat, lng) is added when the caller may see it."""
    out: dict[str, Any] = {
        "id": trip.id, "state": trip.state.value, "rider_id": trip.rider_id,
        "driver_id": trip.driver_id, "vehicle_class": trip.vehicle_class,
        "pickup": {"lat": trip.pickup_lat, "lng": trip.pickup_lng},
        "dropoff": {"lat": trip.dropoff_lat, "lng": trip.dropoff_lng},
        "requested_at": iso(trip.requested_at), "assigned_at": iso(trip.assigned_at),
        "arrived_at": iso(trip.arrived_at), "started_at": iso(trip.started_at),
        "completed_at": iso(trip.completed_at), "cancelled_at": iso(trip.cancelled_at),
        "cancelled_by": trip.cancelled_by, "surge_multiplier": trip.surge,
        "fare_estimate": money(trip.fare_estimate, trip.currency),
        "fare": money(trip.fare_final, trip.currency), "fare_rule": trip.fare_rule,
        "distance_m": quantity(trip.distance_m), "duration_s": quantity(trip.duration_s),
        "payment_state": trip.payment_state,
    }
    if driver_location is not None:
        out["driver_location"] = {"lat": driver_location[0], "lng": driver_location[1]}
    return out


def offer_view(offer: Offer, trip: Trip | None = None) -> dict[str, Any]:
    """An offer; with its trip, also where to pick up, where to go and the fare estimate."""
    out: dict[str, Any] = {
        "id": offer.id, "trip_id": offer.trip_id, "state": offer.state.value,
        "created_at": iso(offer.created_at), "deadline": iso(offer.deadline),
        "rank": offer.rank, "distance_m": quantity(offer.distance_m),
        "eta_s": quantity(offer.eta_s),
    }
    if trip is not None:
        out["pickup"] = {"lat": trip.pickup_lat, "lng": trip.pickup_lng}
        out["dropoff"] = {"lat": trip.dropoff_lat, "lng": trip.dropoff_lng}
        out["fare_estimate"] = money(trip.fare_estimate, trip.currency)
    return out


def cancel_terms_view(terms: CancelTerms, currency: str) -> dict[str, Any]:
    """What a rider's cancellation costs: free until `free_until` (null: no driver assigned
    yet, the free period starts at assignment), then `fee`."""
    return {"fee": money(terms.fee, currency), "free_until": iso(terms.free_until),
            "free_for_s": quantity(terms.free_for_s)}
