"""What dispatch needs of a unit of work: driver states, offers and dispatch records, on top
of the trips' repositories."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ridehail.kernel.versioned import Versioned
from trips.model import Trip
from trips.unit import TripsUnit

from .model import Claim, DispatchRecord, DriverState, DriverStatus, DriverSummary, Offer


class DriverStateRepository(Versioned[DriverState], Protocol):
    def add(self, state: DriverState) -> None: ...

    def claim_first(self, driver_ids: Sequence[str], trip_id: str, now: float) -> Claim:
        """Offer `trip_id` to the first of `driver_ids` (in their order) whose row says
        available, in one statement on PostgreSQL: that row goes offered to the trip (at
        `now`, its version bumped, so a writer that read it before gets `Conflict`). The
        driver, the row's new version (the directory's mirror orders changes by it) and why
        each candidate before them was not claimed (`Claim`); a row another transaction holds
        is skipped as "claimed", not waited for."""
        ...

    def open_and_claim_first(self, trip: Trip, driver_ids: Sequence[str], now: float
                             ) -> Claim | None:
        """Open the new `trip` (`TripRepository.open`'s rules), then `claim_first` a driver
        for it; on PostgreSQL both in one statement. None when the trip is refused: then
        nothing is written and no driver claimed."""
        ...

    def release(self, driver_id: str, trip_id: str, now: float, *,
                status: DriverStatus | None = None) -> int | None:
        """The driver goes available (at `now`, its version bumped) if their row still holds
        `trip_id` (and, given `status`, is in it), in one statement: the row's new version,
        or None when it does not (nothing written)."""
        ...

    def online_page(self, after: int, limit: int) -> list[DriverSummary]:
        """Online drivers with an id above `after`, by id, at most `limit`."""
        ...

    def changed_page(self, since: float, after: int, limit: int) -> list[DriverSummary]:
        """Drivers in any status whose row changed at or after `since` (its `updated_at`),
        with an id above `after`, by id, at most `limit`."""
        ...

    def many(self, driver_ids: list[str]) -> list[DriverState]: ...


class OfferRepository(Versioned[Offer], Protocol):
    def add(self, offer: Offer, new_record: DispatchRecord | None = None) -> None:
        """Store a new offer (`Conflict` when a unique rule refuses it: one pending offer per
        trip and per driver), and with it `new_record`, its trip's first dispatch record (on
        PostgreSQL in the same statement: a trip request's one round trip fewer); `Conflict`
        too when the trip has a record already. After a `Conflict` with `new_record` the unit
        may hold the offer: it must not commit."""
        ...

    def pending_for_driver(self, driver_id: str) -> list[Offer]: ...

    def pending_for_trip(self, trip_id: str) -> Offer | None: ...

    def withdraw_pending(self, trip_id: str, now: float) -> Offer | None:
        """Close the trip's pending offer as withdrawn at `now`, in one statement; the offer
        as closed, or None when none was pending."""
        ...

    def for_trip(self, trip_id: str) -> list[Offer]: ...

    def expired_pending(self, now: float, limit: int = 100) -> list[Offer]: ...


class DispatchRecordRepository(Versioned[DispatchRecord], Protocol):
    def add(self, record: DispatchRecord) -> None: ...

    def append(self, trip_id: str, now: float, event: dict[str, Any],
               outcome: str | None = None) -> None:
        """Add `event` (`DispatchRecord.entry`) to the end of the trip's record, and set its
        outcome if given, in one statement without reading it (its version moves on); a trip
        without a record gets one created at `now`. Concurrent appends both land."""
        ...


class DispatchUnit(TripsUnit, Protocol):
    drivers: DriverStateRepository
    offers: OfferRepository
    records: DispatchRecordRepository


DispatchUnits = Callable[..., DispatchUnit]
