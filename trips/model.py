"""The trip and its lifecycle state machine. Plain Python: no Flask, no SQLAlchemy.

requested -> driver_assigned -> driver_arrived -> in_progress -> completed;
cancelled and no_driver_found are terminal. A driver who cancels before pickup hands the trip
back to `requested` (the rider is matched again), as riders of real ride-hailing apps expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class TripState(StrEnum):
    requested = "requested"
    driver_assigned = "driver_assigned"
    driver_arrived = "driver_arrived"
    in_progress = "in_progress"
    completed = "completed"
    cancelled = "cancelled"
    no_driver_found = "no_driver_found"


LIVE = frozenset({TripState.driver_assigned, TripState.driver_arrived, TripState.in_progress})
OPEN = LIVE | {TripState.requested}
TERMINAL = frozenset({TripState.completed, TripState.cancelled, TripState.no_driver_found})

TRANSITIONS: dict[TripState, frozenset[TripState]] = {
    TripState.requested: frozenset(
        {TripState.driver_assigned, TripState.cancelled, TripState.no_driver_found}
    ),
    TripState.driver_assigned: frozenset(
        {TripState.driver_arrived, TripState.cancelled, TripState.requested}
    ),
    TripState.driver_arrived: frozenset(
        {TripState.in_progress, TripState.cancelled, TripState.requested}
    ),
    TripState.in_progress: frozenset({TripState.completed}),
    TripState.completed: frozenset(),
    TripState.cancelled: frozenset(),
    TripState.no_driver_found: frozenset(),
}


class TripError(Exception):
    """Base of the trip domain's errors."""


class IllegalTransition(TripError):
    def __init__(self, trip_id: str, current: TripState, target: TripState) -> None:
        super().__init__(f"trip {trip_id} is {current.value}; it cannot become {target.value}")
        self.current = current
        self.target = target


class StaleState(TripError):
    """Someone else changed the row between our read and our write (optimistic concurrency)."""


class TripNotFound(TripError):
    pass


@dataclass
class Trip:
    id: str
    rider_id: str
    vehicle_class: str
    pickup_lat: float
    pickup_lng: float
    dropoff_lat: float
    dropoff_lng: float
    requested_at: float
    state: TripState = TripState.requested
    driver_id: str | None = None
    assigned_at: float | None = None
    arrived_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    cancelled_at: float | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    currency: str = "USD"
    fare_estimate: int | None = None  # minor units (cents), never float
    fare_final: int | None = None
    surge: str = "1.0"  # a Decimal as text: locked at request time
    distance_m: float | None = None
    duration_s: float | None = None
    payment_state: str | None = None
    version: int = 0
    rejected_drivers: list[str] = field(default_factory=list)
    # Which written rule set fare_final (trips/pricing.py: FareRule; a cancellation fee's rule
    # is "cancel_fee" or "no_show_fee"); None while there is no fare.
    fare_rule: str | None = None
    pickup_pin: str | None = None  # the rider's pickup PIN, when the setting turns PINs on
    pin_attempts: int = 0  # wrong PINs entered at start
    # The route the upfront fare was priced on (the travel-time model's at request time): the
    # meter judges "longer than quoted" against it, whatever the model answers later.
    quote_duration_s: float | None = None
    quote_distance_m: float | None = None

    def quoted_route(self) -> tuple[float, float] | None:
        """(seconds, road metres) of the quote, None for a trip stored before they were kept."""
        if self.quote_duration_s is None or self.quote_distance_m is None:
            return None
        return self.quote_duration_s, self.quote_distance_m

    def _move(self, target: TripState) -> None:
        if target not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.id, self.state, target)
        self.state = target

    def assign(self, driver_id: str, now: float) -> None:
        self._move(TripState.driver_assigned)
        self.driver_id = driver_id
        self.assigned_at = now

    def arrive(self, now: float) -> None:
        self._move(TripState.driver_arrived)
        self.arrived_at = now

    def start(self, now: float) -> None:
        self._move(TripState.in_progress)
        self.started_at = now

    def complete(self, now: float, *, distance_m: float, fare_final: int,
                 fare_rule: str | None = None) -> None:
        self._move(TripState.completed)
        self.completed_at = now
        self.distance_m = distance_m
        self.duration_s = now - (self.started_at or now)
        self.fare_final = fare_final
        self.fare_rule = fare_rule
        self.payment_state = "pending"

    def cancel(self, by: str, now: float, reason: str | None = None) -> None:
        self._move(TripState.cancelled)
        self.cancelled_at = now
        self.cancelled_by = by
        self.cancel_reason = reason

    def hand_back(self, now: float) -> str:
        """The driver cancels before pickup: the trip needs a new driver. Returns the old one."""
        self._move(TripState.requested)
        old = self.driver_id
        assert old is not None
        self.rejected_drivers.append(old)
        self.driver_id = None
        self.assigned_at = None
        self.arrived_at = None
        return old

    def no_driver(self, now: float) -> None:
        self._move(TripState.no_driver_found)
        self.cancelled_at = now


class PaymentRequired(Exception):
    """The rider's last charge failed: no new trip until they add a working method (a 402)."""

    def __init__(self, trip_id: str, detail: str | None) -> None:
        super().__init__(f"the payment for trip {trip_id} failed ({detail})")
        self.trip_id = trip_id
        self.detail = detail


# --- ratings -----------------------------------------------------------------------------

RECENT = 20  # the recent average covers the last 20 ratings


class NotRatable(Exception):
    """The trip is not completed yet, or this party has rated it already (a 409)."""


@dataclass
class Rating:
    trip_id: str
    rater_role: str  # "rider" rates the driver; "driver" rates the rider
    rater_id: str
    ratee_id: str
    stars: int
    comment: str | None
    created_at: float
    applied: bool = False


@dataclass
class RatingAggregate:
    account_id: str
    count: int = 0
    total: int = 0
    recent: list[int] = field(default_factory=list)
    version: int = 0

    def add(self, stars: int) -> None:
        self.count += 1
        self.total += stars
        self.recent = [*self.recent, stars][-RECENT:]

    @property
    def average(self) -> float | None:
        return round(self.total / self.count, 2) if self.count else None

    @property
    def recent_average(self) -> float | None:
        return round(sum(self.recent) / len(self.recent), 2) if self.recent else None

    def to_dict(self) -> dict[str, Any]:
        return {"average": self.average, "count": self.count,
                "recent_average": self.recent_average, "recent_count": len(self.recent)}
