"""Receipts, earnings and trip history: what a trip cost, who got what, and a party's past
trips, read in one unit of work each.
Use cases over the trips' repositories; the HTTP layer only serialises what they return."""

from __future__ import annotations

from dataclasses import dataclass

from .access import party_trip
from .fares import Tariff
from .ledger import LedgerEntry, account_key
from .model import Rating, Trip
from .money import split_payment
from .payments import Payment
from .unit import TripsUnits

DEFAULT_CURRENCY = "USD"  # the earnings of a driver with no payout yet


@dataclass(frozen=True)
class Receipt:
    trip: Trip
    payment: Payment | None  # the rider's payment: shown to the rider only
    ledger: list[LedgerEntry]
    ratings: list[Rating]
    # rider_charge, driver_payout, platform_fee: from the ledger once captured (`final`),
    # otherwise what the split will be; empty while the trip has no fare.
    split: dict[str, int]
    final: bool
    booking_fee: int
    commission_bps: int


@dataclass(frozen=True)
class Earnings:
    driver_id: str
    currency: str
    trips: int
    balance: int
    recent: list[LedgerEntry]


def receipt(units: TripsUnits, trip_id: str, role: str, account_id: str, *,
            tariff: Tariff, commission_bps: int) -> Receipt:
    """The trip's receipt, for its rider or its driver (TripNotFound for anyone else).
    `tariff` is the one the engine prices trips with (its booking fee is shown).

    The rider sees the whole split and their payment (state, attempts, errors); the driver
    sees their payout only: nothing of the rider's payment method or its failures."""
    with units(readonly=True) as uow:
        trip = party_trip(uow.trips.get(trip_id), trip_id, role, account_id)
        pay = uow.payments.get(trip_id)
        lines = uow.ledger.for_trip(trip_id)
        given = uow.ratings.for_trip(trip_id)
    by_kind = {e.kind: e for e in lines}
    if by_kind:
        split = {"rider_charge": -by_kind["rider_charge"].amount,
                 "driver_payout": by_kind["driver_payout"].amount,
                 "platform_fee": by_kind["platform_fee"].amount}
    elif trip.fare_final is not None:  # not captured yet: what the split will be
        split = split_payment(trip.fare_final, commission_bps).to_dict()
    else:
        split = {}
    final = bool(by_kind)
    if role == "driver":
        pay = None
        lines = [e for e in lines if e.account == account_key("driver", account_id)]
        split = {k: v for k, v in split.items() if k == "driver_payout"}
    return Receipt(trip, pay, lines, given, split, final, tariff.booking_fee, commission_bps)


def earnings(units: TripsUnits, driver_id: str, limit: int = 100) -> Earnings:
    """The driver's balance, number of paid trips and latest payouts."""
    account = account_key("driver", driver_id)
    with units(readonly=True) as uow:
        count, balance = uow.ledger.totals(account)
        recent = uow.ledger.for_account(account, limit=limit)
    currency = recent[0].currency if recent else DEFAULT_CURRENCY
    return Earnings(driver_id, currency, count, balance, recent)


HISTORY_MAX = 100


def history(units: TripsUnits, role: str, account_id: str, limit: int = 20) -> list[Trip]:
    """A rider's trips, or the trips a driver was assigned, newest first (at most
    `HISTORY_MAX`): only the caller's own, so nobody lists another's trips."""
    limit = max(1, min(limit, HISTORY_MAX))
    with units(readonly=True) as uow:
        if role == "rider":
            return uow.trips.for_rider(account_id, limit=limit)
        if role == "driver":
            return uow.trips.for_driver(account_id, limit=limit)
    return []
