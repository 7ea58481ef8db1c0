"""Read-only use cases for the debug map: the open trips, and why a trip got the driver it got.
Each opens its own read-only unit of work, so the map's views query no repository."""

from __future__ import annotations

from trips.model import OPEN, Trip, TripNotFound

from .model import DispatchRecord, Offer
from .unit import DispatchUnits

MAX_OPEN_TRIPS = 5000


def open_trips(units: DispatchUnits, limit: int = MAX_OPEN_TRIPS) -> list[Trip]:
    """Trips not finished yet (requested or live), at most `limit`: the current state, since
    trips live in the database, not in the index's snapshots."""
    with units(readonly=True) as uow:
        return uow.trips.in_states([s.value for s in OPEN], limit=limit)


def dispatch_record(units: DispatchUnits, trip_id: str
                    ) -> tuple[Trip, DispatchRecord | None, list[Offer]]:
    """The trip, its dispatch record (None before the first search) and its offers, read
    together; TripNotFound when there is no such trip."""
    with units(readonly=True) as uow:
        trip = uow.trips.get(trip_id)
        if trip is None:
            raise TripNotFound(trip_id)
        return trip, uow.records.get(trip_id), uow.offers.for_trip(trip_id)
