"""How trips and offers look on the wire: every time ISO 8601, every quantity a float."""

from __future__ import annotations

from dispatch.model import Offer, OfferState
from dispatch.views import offer_view, trip_view
from trips.model import Trip, TripState


def test_quantities_are_floats_and_times_iso_8601() -> None:
    offer = Offer("1", "2", "3", 1_700_000_000, 1_700_000_015, 0, 120, 30, OfferState.pending)
    out = offer_view(offer)
    assert type(out["eta_s"]) is float and out["eta_s"] == 30.0
    assert type(out["distance_m"]) is float
    assert out["created_at"] == "2023-11-14T22:13:20+00:00"
    trip = Trip(id="2", rider_id="5", vehicle_class="standard", pickup_lat=40.0,
                pickup_lng=-73.0, dropoff_lat=40.1, dropoff_lng=-73.1, requested_at=0,
                state=TripState.completed, distance_m=1500, duration_s=600, fare_final=900,
                fare_rule="quote")
    view = trip_view(trip)
    assert view["fare_rule"] == "quote"  # which written rule set the fare
    assert type(view["distance_m"]) is float and type(view["duration_s"]) is float
    assert view["requested_at"] == "1970-01-01T00:00:00+00:00"
