"""Payments: our record of a trip's charge, the payment-provider interface and the built-in
sandbox provider.

The provider is an external system: it is called with no database transaction of ours open,
and it honours idempotency keys (the same key charged twice returns the first result and moves
money once). The sandbox keeps its own book in the `provider_charges` table, so that holds
across processes, and its test tokens behave like a real provider's sandbox:

    tok_ok        captures
    tok_declined  permanent decline
    tok_timeout   transient error on every attempt (the provider is unreachable)
    tok_flaky     transient error on the first attempt for a key, then captures
    tok_slow      captures, then answers only after a pause (for crash tests: the money has
                  moved, our worker has not recorded it yet)
    tok_lost      captures, then the answer is lost (a timeout): the money moved, and only
                  `lookup` by the idempotency key tells
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

TOKEN_PATTERN = re.compile(r"^tok_[a-z0-9_]{2,60}$")
SANDBOX_TOKENS = frozenset({"tok_ok", "tok_declined", "tok_timeout", "tok_flaky", "tok_slow",
                            "tok_lost"})


class PaymentError(Exception):
    """Base of the provider's errors."""


class PaymentDeclined(PaymentError):
    """Permanent: retrying with the same method will not help."""


class ProviderUnavailable(PaymentError):
    """Transient (timeout, 5xx): retry later with the same idempotency key."""


class UnknownPaymentMethod(ValueError):
    pass


@dataclass(frozen=True)
class ChargeResult:
    charge_id: str
    amount: int
    currency: str
    replayed: bool = False  # the provider answered from its idempotency record


# A rider with a payment in this state may not request a trip until it is settled: the trip's
# insert refuses it (`TripRepository.open`) and `billing.blocking_payment` names the payment.
BLOCKING = "failed"


@dataclass
class Payment:
    """Our side: one row per trip (the trip id is the primary key)."""

    trip_id: str
    rider_id: str
    driver_id: str
    amount: int
    currency: str
    state: str = "pending"  # pending -> captured | failed; failed -> pending on a new method
    generation: int = 0
    attempts: int = 0
    token: str | None = None
    last_error: str | None = None
    provider_charge_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    captured_at: float | None = None
    version: int = 0

    @property
    def idempotency_key(self) -> str:
        # Stable across retries and redeliveries of the same attempt; a new generation (the
        # rider replaced a declined method) is a new charge at the provider.
        return payment_key(self.trip_id, self.generation)


def payment_key(trip_id: str, generation: int) -> str:
    """The idempotency key of one generation of a trip's payment."""
    return f"trip-{trip_id}-g{generation}"


@dataclass
class PaymentMethod:
    account_id: str
    token: str
    updated_at: float
    version: int = 0


@dataclass
class ProviderCharge:
    idempotency_key: str
    charge_id: str
    token: str
    amount: int
    currency: str
    status: str  # captured | declined | error
    attempts: int
    created_at: float
    updated_at: float


class PaymentProvider(Protocol):
    def check_token(self, token: str) -> None:
        """Raise UnknownPaymentMethod if the provider does not know this token."""

    def charge(self, idempotency_key: str, token: str, amount: int,
               currency: str) -> ChargeResult:
        """Capture `amount`; raises PaymentDeclined or ProviderUnavailable."""

    def lookup(self, idempotency_key: str) -> ChargeResult | None:
        """What the provider did under this key: the capture, or None when no money moved
        (never tried, declined, or failed). Raises ProviderUnavailable. Asked before a charge
        under a new key, so a capture whose answer was lost is recorded, not repeated."""
