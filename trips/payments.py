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
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ridehail.versioned import Conflict

TOKEN_PATTERN = re.compile(r"^tok_[a-z0-9_]{2,60}$")
SANDBOX_TOKENS = frozenset({"tok_ok", "tok_declined", "tok_timeout", "tok_flaky", "tok_slow"})


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
        return f"trip-{self.trip_id}-g{self.generation}"


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


class SandboxProvider:
    """The test provider. `slow_s` is how long a `tok_slow` capture takes to answer."""

    def __init__(self, uow_factory: Callable[..., Any], *, slow_s: float = 30.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.uow_factory = uow_factory
        self.slow_s = slow_s
        self.clock = clock

    def check_token(self, token: str) -> None:
        if token not in SANDBOX_TOKENS:
            raise UnknownPaymentMethod(
                f"token: the sandbox provider knows {', '.join(sorted(SANDBOX_TOKENS))}")

    def charge(self, idempotency_key: str, token: str, amount: int,
               currency: str) -> ChargeResult:
        for _ in range(3):  # a lost race on a new key re-reads the winner's record
            try:
                record, fresh = self._record(idempotency_key, token, amount, currency)
                break
            except Conflict:
                continue
        else:
            raise ProviderUnavailable("sandbox: concurrent requests with one key")
        if record.status == "declined":
            raise PaymentDeclined(f"card declined ({record.token})")
        if record.status == "error":
            raise ProviderUnavailable(f"provider timeout ({record.token})")
        if fresh and record.token == "tok_slow":
            time.sleep(self.slow_s)  # money moved; the answer is late (the crash window)
        return ChargeResult(record.charge_id, record.amount, record.currency, replayed=not fresh)

    def _record(self, key: str, token: str, amount: int,
                currency: str) -> tuple[ProviderCharge, bool]:
        """Decide this attempt's outcome and commit it to the provider's book. Returns the
        record and whether this call moved money (False: a replay of a settled key)."""
        now = self.clock()
        with self.uow_factory() as uow:
            rec: ProviderCharge | None = uow.provider_charges.get(key)
            if rec is not None and rec.status in ("captured", "declined"):
                return rec, False  # idempotent replay: the first result, no money moves
            attempts = (rec.attempts if rec else 0) + 1
            status = _outcome(token, attempts)
            if rec is None:
                rec = ProviderCharge(key, f"ch_{key}", token, amount, currency, status,
                                     attempts, now, now)
                uow.provider_charges.add(rec)
            else:
                seen = rec.attempts
                rec.token, rec.status, rec.attempts, rec.updated_at = token, status, attempts, now
                uow.provider_charges.update(rec, seen_attempts=seen)
            uow.commit()
        return rec, status == "captured"


def _outcome(token: str, attempt: int) -> str:
    if token == "tok_declined":
        return "declined"
    if token == "tok_timeout":
        return "error"
    if token == "tok_flaky":
        return "error" if attempt == 1 else "captured"
    if token in ("tok_ok", "tok_slow"):
        return "captured"
    return "declined"  # a token the sandbox never issued
