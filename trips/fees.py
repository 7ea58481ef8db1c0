"""Cancellation and no-show fees and the pickup PIN: the rules, one function each. Plain
Python; `dispatch/lifecycle.py` applies them inside its units of work.

After Uber's and Namma Yatri's rules:

- A rider who cancels more than `fee_after_s` after a driver was assigned pays `fee`.
- A driver who waited `no_show_wait_s` at the pickup may cancel the trip as a no-show; the
  rider pays `fee`.
- A fee is the cancelled trip's fare (`fare_final`, with `fare_rule` "cancel_fee" or
  "no_show_fee"): it is charged through the same exactly-once payment path as a completed
  trip, and its ledger lines balance the same way (the rider's debit = the driver's payout +
  the platform's commission).
- With `pickup_pin` on, the trip gets a 4-digit PIN when the driver arrives; only its rider
  sees it, and the driver must enter it to start the trip, with `pin_attempts` wrong tries at
  most.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from .model import TRANSITIONS, Trip, TripError, TripState


@dataclass(frozen=True)
class CancellationPolicy:
    fee: int = 500  # minor units, to the driver (less the commission)
    fee_after_s: float = 120.0  # a rider's cancel this long after assignment pays the fee
    no_show_wait_s: float = 300.0  # the driver's wait at the pickup before a no-show
    pickup_pin: bool = False
    pin_attempts: int = 5

    def __post_init__(self) -> None:
        if self.fee < 0 or self.fee_after_s < 0 or self.no_show_wait_s < 0:
            raise ValueError("fee, fee_after_s and no_show_wait_s must be >= 0")
        if self.pin_attempts < 1:
            raise ValueError("pin_attempts: must be >= 1")


class NoShowTooEarly(TripError):
    """The driver has not waited long enough at the pickup (a 409)."""


class WrongPin(TripError):
    """The PIN entered at start is not the trip's (a 422 naming `pin`)."""

    def __init__(self, message: str, attempts_left: int) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left


class PinLocked(TripError):
    """Too many wrong PINs: the trip cannot start (a 409; the rider or driver cancels)."""


# The states a trip may be cancelled from (until it starts), as trips.model's transitions say.
RIDER_CANCELLABLE = frozenset(s for s, nxt in TRANSITIONS.items() if TripState.cancelled in nxt)


def rider_cancel_fee(trip: Trip, now: float, policy: CancellationPolicy) -> int:
    """What a rider owes for cancelling `trip` at `now`: the fee when a driver has been
    assigned for more than `fee_after_s`, else nothing."""
    if trip.driver_id is None or trip.assigned_at is None or policy.fee == 0:
        return 0
    return policy.fee if now - trip.assigned_at > policy.fee_after_s else 0


@dataclass(frozen=True)
class CancelTerms:
    """What a rider's cancellation costs, to show before they confirm: nothing until
    `free_until` (None: no driver yet, so the clock has not started), `fee` after it."""

    fee: int
    free_until: float | None
    free_for_s: float


def rider_cancel_terms(trip: Trip, policy: CancellationPolicy) -> CancelTerms | None:
    """The terms of `rider_cancel_fee` for this trip, or None when the rider can no longer
    cancel it (started or ended)."""
    if trip.state not in RIDER_CANCELLABLE:
        return None
    free_until = None if trip.assigned_at is None else trip.assigned_at + policy.fee_after_s
    return CancelTerms(policy.fee, free_until, policy.fee_after_s)


def check_no_show(trip: Trip, now: float, policy: CancellationPolicy) -> None:
    """A driver may cancel as a no-show only at the pickup, after `no_show_wait_s` there."""
    if trip.state != TripState.driver_arrived or trip.arrived_at is None:
        raise NoShowTooEarly(f"trip {trip.id} is {trip.state.value}; a no-show needs the "
                             "driver at the pickup (arrive first)")
    waited = now - trip.arrived_at
    if waited < policy.no_show_wait_s:
        raise NoShowTooEarly(
            f"the driver has waited {waited:.0f} s at the pickup; a no-show needs "
            f"{policy.no_show_wait_s:.0f} s (another {policy.no_show_wait_s - waited:.0f} s)")


def charge_fee(trip: Trip, amount: int, rule: str) -> None:
    """Make `amount` the cancelled trip's fare: the payment path charges it exactly once."""
    if amount <= 0:
        return
    trip.fare_final = amount
    trip.fare_rule = rule
    trip.payment_state = "pending"


def new_pin() -> str:
    return f"{secrets.randbelow(10_000):04d}"


def check_pin(trip: Trip, pin: str | None, policy: CancellationPolicy) -> TripError | None:
    """None when the trip may start (a trip with no PIN needs none). A wrong or missing PIN
    counts one try on the trip (the caller saves it) and returns the error to answer; after
    `pin_attempts` wrong tries every start is refused."""
    if not policy.pickup_pin or trip.pickup_pin is None:
        return None
    if trip.pin_attempts >= policy.pin_attempts:
        return PinLocked(f"trip {trip.id}: too many wrong PINs; the trip cannot start "
                         "(the rider or the driver cancels it)")
    if pin is not None and hmac.compare_digest(pin, trip.pickup_pin):
        return None
    trip.pin_attempts += 1
    left = policy.pin_attempts - trip.pin_attempts
    return WrongPin(f"wrong or missing pickup PIN ({left} tries left)", left)
