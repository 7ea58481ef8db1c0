"""Billing use cases: charge a completed trip exactly once, block and unblock riders, sweep
stuck payments, receipts and earnings.

Exactly once, end to end:
1. The provider moves money at most once per idempotency key (`trip-<id>-g<generation>`):
   a redelivered or duplicated task replays the first result.
2. Our side records the outcome in one transaction: the payment row goes pending -> captured
   by compare-and-set on its version, the three ledger lines are inserted under the
   (trip_id, kind) primary key, and the trip's payment_state is set. A concurrent duplicate
   loses the CAS (or the key) and rolls back, writing nothing.
No transaction is held while the provider is called (on SQLite it would hold the write lock,
and a slow provider must not block the API).
3. A payment re-opened under a new generation (the rider added a method after a failure) asks
   the provider first, by the earlier generations' keys, whether one of them captured after
   all (a last retry that timed out may have moved the money): if so, that capture is
   recorded and nothing is charged again (`_earlier_capture`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ridehail.kernel.errors import Conflict

from .ledger import entries_for
from .metrics import PAYMENT_ATTEMPTS, PAYMENT_FAILURES
from .model import TripState
from .money import split_payment
from .payments import (
    BLOCKING,
    ChargeResult,
    Payment,
    PaymentDeclined,
    PaymentMethod,
    PaymentProvider,
    ProviderUnavailable,
    payment_key,
)
from .unit import TripsUnit, TripsUnits

T = TypeVar("T")


@dataclass(frozen=True)
class ChargeOutcome:
    state: str  # captured | failed | retry | skipped
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"state": self.state, "detail": self.detail}


@dataclass(frozen=True)
class BillingPolicy:
    commission_bps: int = 2500
    fallback_token: str | None = None  # charged when the rider has no method of their own


def charge_trip(uow_factory: TripsUnits, provider: PaymentProvider, trip_id: str,
                policy: BillingPolicy, *, final_attempt: bool = False,
                clock: Callable[[], float] = time.time) -> ChargeOutcome:
    """One attempt at charging a trip. `retry` means a transient provider error: the caller
    retries later (with backoff); on the `final_attempt` the payment is marked failed."""
    opened = _open(uow_factory, trip_id, policy, clock())
    if isinstance(opened, ChargeOutcome):
        return opened
    pay, token = opened
    try:
        earlier = _earlier_capture(provider, pay)
    except ProviderUnavailable as exc:
        return _settle(uow_factory, pay, token, policy, clock(), error=str(exc), transient=True)
    if earlier is not None:
        return _settle(uow_factory, pay, token, policy, clock(), charge_id=earlier.charge_id)
    try:
        result = provider.charge(pay.idempotency_key, token, pay.amount, pay.currency)
    except PaymentDeclined as exc:
        return _settle(uow_factory, pay, token, policy, clock(), error=str(exc))
    except ProviderUnavailable as exc:
        if final_attempt:
            return _settle(uow_factory, pay, token, policy, clock(),
                           error=f"gave up after retries: {exc}")
        return _settle(uow_factory, pay, token, policy, clock(), error=str(exc), transient=True)
    return _settle(uow_factory, pay, token, policy, clock(), charge_id=result.charge_id)


def _earlier_capture(provider: PaymentProvider, pay: Payment) -> ChargeResult | None:
    """A capture the provider made under an earlier generation's key of this payment (its
    answer was lost: we marked the payment failed, the rider added a method, and the payment
    was re-opened under a new key). Only re-opened payments ask: one lookup per generation."""
    for generation in range(pay.generation):
        found = provider.lookup(payment_key(pay.trip_id, generation))
        if found is not None:
            return found
    return None


def _open(uow_factory: TripsUnits, trip_id: str, policy: BillingPolicy,
          now: float) -> tuple[Payment, str] | ChargeOutcome:
    """The trip's pending payment (created on first sight) and the token to charge."""
    with uow_factory() as uow:
        trip = uow.trips.get(trip_id)
        # A completed trip's fare, or a cancelled trip's fee (trips/fees.py): both are the
        # trip's fare_final, charged the same way.
        if trip is None or trip.state not in (TripState.completed, TripState.cancelled) \
                or trip.fare_final is None or trip.driver_id is None:
            return ChargeOutcome("skipped", "not a completed trip")
        method = uow.payment_methods.get(trip.rider_id)
        pay = uow.payments.get(trip_id)
        if pay is None:
            pay = Payment(trip_id, trip.rider_id, trip.driver_id, trip.fare_final,
                          trip.currency, created_at=now, updated_at=now)
            try:
                uow.payments.add(pay)
                uow.commit()
            except Conflict:  # a duplicate delivery created it first: use theirs
                pay = _row(uow.payments.get(trip_id), "payment", trip_id)
        if pay.state != "pending":
            return ChargeOutcome(pay.state, "already settled")
    token = method.token if method is not None else policy.fallback_token
    if token is None:
        return _settle(uow_factory, pay, "", policy, now, error="no payment method on file")
    return pay, token


def _settle(uow_factory: TripsUnits, seen: Payment, token: str, policy: BillingPolicy,
            now: float, *, charge_id: str | None = None, error: str | None = None,
            transient: bool = False) -> ChargeOutcome:
    """Record one attempt's outcome in one transaction (see the module docstring)."""
    try:
        with uow_factory() as uow:
            pay = _row(uow.payments.get(seen.trip_id), "payment", seen.trip_id)
            if pay.state != "pending" or pay.generation != seen.generation:
                return ChargeOutcome(pay.state, "settled by another delivery")
            pay.attempts += 1
            pay.token = token or None
            pay.updated_at = now
            pay.last_error = error
            trip = _row(uow.trips.get(pay.trip_id), "trip", pay.trip_id)
            if charge_id is not None:
                pay.state = "captured"
                pay.provider_charge_id = charge_id
                pay.captured_at = now
                split = split_payment(pay.amount, policy.commission_bps)
                uow.payments.save(pay)
                for line in entries_for(pay.trip_id, pay.rider_id, pay.driver_id, split,
                                        pay.currency, now):
                    uow.ledger.add(line)
            elif not transient:
                pay.state = "failed"
                uow.payments.save(pay)
            else:
                uow.payments.save(pay)
                uow.commit()
                _count_attempt("transient")
                return ChargeOutcome("retry", error or "")
            trip.payment_state = pay.state
            uow.trips.save(trip)
            uow.commit()
            _count_attempt(None if pay.state == "captured" else "final")
            return ChargeOutcome(pay.state, error or charge_id or "")
    except Conflict:
        # A concurrent delivery of the same charge recorded it first; nothing of ours stuck.
        with uow_factory(readonly=True) as uow:
            pay = _row(uow.payments.get(seen.trip_id), "payment", seen.trip_id)
        return ChargeOutcome(pay.state, "settled by another delivery")


def _count_attempt(failure: str | None) -> None:
    """An attempt recorded (committed): counted once, here; a failure by its kind."""
    PAYMENT_ATTEMPTS.inc()
    if failure is not None:
        PAYMENT_FAILURES.labels(failure).inc()


def _row(row: T | None, what: str, key: str) -> T:
    """A row the schema guarantees (a payment's trip, a payment once inserted)."""
    if row is None:
        raise LookupError(f"{what} {key} is missing")
    return row


# --- riders' payment methods -------------------------------------------------------------

def blocking_payment(uow: TripsUnit, rider_id: str) -> Payment | None:
    """The rider's failed payment, if any: they cannot request a trip until it is settled
    (`TripRepository.open` refuses the trip; this says which payment and why)."""
    failed = uow.payments.for_rider(rider_id, BLOCKING)
    return failed[0] if failed else None


def set_payment_method(uow_factory: TripsUnits, rider_id: str, token: str,
                       now: float) -> list[str]:
    """Store `token` as the rider's default method and re-open their failed payments (a new
    generation: a new idempotency key, since the declined one is settled at the provider).
    Returns the trip ids to charge again."""
    reopened: list[str] = []
    with uow_factory() as uow:
        method = uow.payment_methods.get(rider_id)
        if method is None:
            uow.payment_methods.add(PaymentMethod(rider_id, token, now))
        else:
            method.token, method.updated_at = token, now
            uow.payment_methods.save(method)
        for pay in uow.payments.for_rider(rider_id, "failed"):
            pay.state = "pending"
            pay.generation += 1
            pay.last_error = None
            pay.updated_at = now
            uow.payments.save(pay)
            trip = _row(uow.trips.get(pay.trip_id), "trip", pay.trip_id)
            trip.payment_state = "pending"
            uow.trips.save(trip)
            reopened.append(pay.trip_id)
        uow.commit()
    return reopened


def stuck_payments(uow_factory: TripsUnits, older_than_s: float,
                   clock: Callable[[], float] = time.time) -> list[str]:
    with uow_factory(readonly=True) as uow:
        ids: list[str] = uow.payments.stuck(clock() - older_than_s)
    return ids
