"""The sandbox payment provider: a provider's book kept in our database, with test tokens that
capture, decline, time out, fail once, or answer late. Moves money at most once per key."""

from __future__ import annotations

import time
from collections.abc import Callable

from ridehail.kernel.errors import Conflict

from .payments import (
    SANDBOX_TOKENS,
    ChargeResult,
    PaymentDeclined,
    ProviderCharge,
    ProviderUnavailable,
    UnknownPaymentMethod,
)
from .unit import TripsUnits

# Tokens that exist for tests only: off unless the wiring turns the test hooks on.
TEST_HOOK_TOKENS = frozenset({"tok_slow"})


class SandboxProvider:
    """The test provider. With `test_hooks`, a `tok_slow` capture answers after `slow_s` (the
    crash window of the exactly-once tests); without, tok_slow is refused as a method and
    captures at once."""

    def __init__(self, uow_factory: TripsUnits, *, slow_s: float = 30.0,
                 test_hooks: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.uow_factory = uow_factory
        self.slow_s = slow_s
        self.test_hooks = test_hooks
        self.clock = clock

    def check_token(self, token: str) -> None:
        known = SANDBOX_TOKENS if self.test_hooks else SANDBOX_TOKENS - TEST_HOOK_TOKENS
        if token not in known:
            raise UnknownPaymentMethod(
                f"token: the sandbox provider knows {', '.join(sorted(known))}")

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
            raise PaymentDeclined("card declined")  # never the token: errors are shown
        if record.status == "error" or (fresh and record.token == "tok_lost"):
            raise ProviderUnavailable("provider timeout")
        if fresh and record.token == "tok_slow" and self.test_hooks:
            time.sleep(self.slow_s)  # money moved; the answer is late (the crash window)
        return ChargeResult(record.charge_id, record.amount, record.currency, replayed=not fresh)

    def lookup(self, idempotency_key: str) -> ChargeResult | None:
        with self.uow_factory(readonly=True) as uow:
            rec: ProviderCharge | None = uow.provider_charges.get(idempotency_key)
        if rec is None or rec.status != "captured":
            return None
        return ChargeResult(rec.charge_id, rec.amount, rec.currency, replayed=True)

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
    if token in ("tok_ok", "tok_slow", "tok_lost"):
        return "captured"
    return "declined"  # a token the sandbox never issued
