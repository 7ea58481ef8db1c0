"""The units of work the wiring hands out: every repository of every package, over SQL (the
API, the worker, the CLI) or memory (unit tests and the simulator's engine mode). Registering a
repository is writing it here; nothing is registered by importing a module.

`UnitOfWork` is the whole set, typed: mypy checks each repository call against the Protocols
the domain packages declare (`accounts/unit.py`, `trips/unit.py`, `dispatch/unit.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import Connection, Engine

from accounts.repository import MemoryAccountRepository, SqlAccountRepository
from accounts.unit import AccountRepository
from dispatch.repository import (
    MemoryDispatchRecords,
    MemoryDriverStates,
    MemoryOffers,
    SqlDispatchRecords,
    SqlDriverStates,
    SqlOffers,
)
from dispatch.unit import (
    DispatchRecordRepository,
    DispatchUnit,
    DriverStateRepository,
    OfferRepository,
)
from ridehail.kernel.units import MemoryStore, MemoryUnit, SqlUnit, UndoLog
from trips.billing_repository import (
    MemoryLedgerRepository,
    MemoryPaymentMethodRepository,
    MemoryPaymentRepository,
    MemoryProviderChargeRepository,
    SqlLedgerRepository,
    SqlPaymentMethodRepository,
    SqlPaymentRepository,
    SqlProviderChargeRepository,
)
from trips.ratings_repository import (
    MemoryRatingAggregateRepository,
    MemoryRatingRepository,
    SqlRatingAggregateRepository,
    SqlRatingRepository,
)
from trips.repository import MemoryTripRepository, SqlTripRepository
from trips.unit import (
    LedgerRepository,
    PaymentMethodRepository,
    PaymentRepository,
    ProviderChargeRepository,
    RatingAggregateRepository,
    RatingRepository,
    TripRepository,
)

# The whole set: the dispatch unit extends the trips unit, which extends the accounts unit.
UnitOfWork = DispatchUnit


class _Repositories:
    """The repositories every unit of work carries, typed (each kind of unit binds them)."""

    accounts: AccountRepository
    trips: TripRepository
    payments: PaymentRepository
    payment_methods: PaymentMethodRepository
    ledger: LedgerRepository
    provider_charges: ProviderChargeRepository
    ratings: RatingRepository
    rating_aggregates: RatingAggregateRepository
    drivers: DriverStateRepository
    offers: OfferRepository
    records: DispatchRecordRepository


class SqlUnitOfWork(_Repositories, SqlUnit):

    def bind(self, connection: Connection) -> None:
        self.accounts = SqlAccountRepository(connection)
        self.trips = SqlTripRepository(connection)
        self.payments = SqlPaymentRepository(connection)
        self.payment_methods = SqlPaymentMethodRepository(connection)
        self.ledger = SqlLedgerRepository(connection)
        self.provider_charges = SqlProviderChargeRepository(connection)
        self.ratings = SqlRatingRepository(connection)
        self.rating_aggregates = SqlRatingAggregateRepository(connection)
        self.drivers = SqlDriverStates(connection)
        self.offers = SqlOffers(connection)
        self.records = SqlDispatchRecords(connection)


class MemoryUnitOfWork(_Repositories, MemoryUnit):
    """A memory unit makes a repository when its use case first touches it: most touch one or
    two of the eleven, and the simulator opens a unit per step of every trip (making all
    eleven each time was ~5% of a 10,000-driver run)."""

    _MAKE: ClassVar[dict[str, Callable[[MemoryStore, UndoLog], object]]] = {
        "accounts": MemoryAccountRepository,
        "trips": MemoryTripRepository,
        "payments": MemoryPaymentRepository,
        "payment_methods": MemoryPaymentMethodRepository,
        "ledger": MemoryLedgerRepository,
        "provider_charges": MemoryProviderChargeRepository,
        "ratings": MemoryRatingRepository,
        "rating_aggregates": MemoryRatingAggregateRepository,
        "drivers": MemoryDriverStates,
        "offers": MemoryOffers,
        "records": MemoryDispatchRecords,
    }

    def bind(self, store: MemoryStore, undo: UndoLog) -> None:
        for name in self._MAKE:  # a unit opened again gets repositories on its new undo log
            self.__dict__.pop(name, None)
        self._bound = (store, undo)

    if not TYPE_CHECKING:  # mypy keeps checking the declared repositories' types
        def __getattr__(self, name: str) -> object:
            make = self._MAKE.get(name)
            bound = self.__dict__.get("_bound")
            if make is None or bound is None:
                raise AttributeError(name)
            repo = make(*bound)
            setattr(self, name, repo)
            return repo


UnitFactory = Callable[..., UnitOfWork]


def sql_uow_factory(engine: Engine) -> UnitFactory:
    def units(readonly: bool = False) -> UnitOfWork:
        return SqlUnitOfWork(engine, readonly)

    return units


def memory_uow_factory(store: MemoryStore | None = None) -> UnitFactory:
    shared = store or MemoryStore()

    def units(readonly: bool = False) -> UnitOfWork:
        return MemoryUnitOfWork(shared)

    return units
