"""What a trips use case (fares, payments, ledger, ratings) needs of a unit of work."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from accounts.unit import AccountsUnit
from ridehail.kernel.versioned import Versioned

from .ledger import LedgerEntry
from .model import Rating, RatingAggregate, Trip
from .payments import Payment, PaymentMethod, ProviderCharge


class TripRepository(Versioned[Trip], Protocol):
    def add(self, trip: Trip) -> None: ...

    def open(self, trip: Trip) -> bool:
        """Insert a trip its rider requested, unless the rider may not open one: a payment
        of theirs in the `BLOCKING` state (trips/payments.py), or another open trip (the
        unique rule uq_trips_open_rider). Both are checked by the insert itself, one round
        trip. False: refused, nothing written."""
        ...

    def open_for_rider(self, rider_id: str) -> Trip | None: ...

    def live_for_driver(self, driver_id: str) -> Trip | None: ...

    def for_rider(self, rider_id: str, limit: int = 50) -> list[Trip]: ...

    def for_driver(self, driver_id: str, limit: int = 50) -> list[Trip]: ...

    def in_states(self, states: Iterable[str], limit: int = 1000) -> list[Trip]: ...


class PaymentRepository(Versioned[Payment], Protocol):
    def add(self, payment: Payment) -> None: ...

    def for_rider(self, rider_id: str, state: str) -> list[Payment]: ...

    def stuck(self, cutoff: float, limit: int = 500) -> list[str]: ...


class PaymentMethodRepository(Versioned[PaymentMethod], Protocol):
    def add(self, method: PaymentMethod) -> None: ...


class LedgerRepository(Protocol):
    def add(self, entry: LedgerEntry) -> None: ...

    def for_trip(self, trip_id: str) -> list[LedgerEntry]: ...

    def for_account(self, account: str, limit: int = 100) -> list[LedgerEntry]: ...

    def totals(self, account: str) -> tuple[int, int]: ...

    def sum_all(self) -> int: ...


class ProviderChargeRepository(Protocol):
    def get(self, key: str) -> ProviderCharge | None: ...

    def add(self, rec: ProviderCharge) -> None: ...

    def update(self, rec: ProviderCharge, *, seen_attempts: int) -> None: ...

    def count(self, status: str | None = None) -> int: ...


class RatingRepository(Protocol):
    def add(self, rating: Rating) -> None: ...

    def get(self, trip_id: str, role: str) -> Rating | None: ...

    def for_trip(self, trip_id: str) -> list[Rating]: ...

    def mark_applied(self, trip_id: str, role: str) -> None: ...

    def unapplied(self, cutoff: float, limit: int = 500) -> list[tuple[str, str]]: ...


class RatingAggregateRepository(Versioned[RatingAggregate], Protocol):
    def add(self, agg: RatingAggregate) -> None: ...

    def many(self, account_ids: list[str]) -> list[RatingAggregate]: ...


class TripsUnit(AccountsUnit, Protocol):
    trips: TripRepository
    payments: PaymentRepository
    payment_methods: PaymentMethodRepository
    ledger: LedgerRepository
    provider_charges: ProviderChargeRepository
    ratings: RatingRepository
    rating_aggregates: RatingAggregateRepository


TripsUnits = Callable[..., TripsUnit]
