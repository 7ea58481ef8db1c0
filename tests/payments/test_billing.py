"""The billing service on SQLite and PostgreSQL: exactly-once charges, the ledger, the sandbox
tokens, failed payments blocking and unblocking riders, the stuck-payment sweep."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ridehail.settings import Settings
from ridehail.units import memory_uow_factory
from trips import billing
from trips.billing import BillingPolicy, charge_trip
from trips.model import TripState
from trips.payments import ChargeResult
from trips.sandbox import SandboxProvider

from .helpers import (
    POLICY,
    captured_once,
    completed_trip,
    ledger,
    migrated,
    payment,
    provider_records,
    set_method,
    trip_payment_state,
)


@pytest.fixture
def uowf(any_db_settings: Settings) -> Iterator[Any]:
    engine, factory = migrated(any_db_settings.database_url)
    yield factory
    engine.dispose()


def test_ok_token_captures_and_the_ledger_balances(uowf: Any) -> None:
    trip = completed_trip(uowf, fare=1999)
    set_method(uowf, trip.rider_id, "tok_ok")
    out = charge_trip(uowf, SandboxProvider(uowf), trip.id, POLICY)
    assert out.state == "captured"
    captured_once(uowf, trip.id, 1999)
    lines = ledger(uowf, trip.id)
    assert lines == {"rider_charge": -1999, "driver_payout": 1499, "platform_fee": 500}
    with uowf(readonly=True) as uow:
        assert uow.ledger.totals(f"driver:{trip.driver_id}") == (1, 1499)
        assert uow.ledger.totals(f"rider:{trip.rider_id}") == (1, -1999)
    assert payment(uowf, trip.id).attempts == 1


def test_the_same_charge_delivered_twice_charges_once(uowf: Any) -> None:
    trip = completed_trip(uowf, fare=2500)
    set_method(uowf, trip.rider_id, "tok_ok")
    provider = SandboxProvider(uowf)
    first = charge_trip(uowf, provider, trip.id, POLICY)
    second = charge_trip(uowf, provider, trip.id, POLICY)
    assert (first.state, second.state) == ("captured", "captured")
    assert second.detail == "already settled"
    captured_once(uowf, trip.id, 2500)
    assert payment(uowf, trip.id).attempts == 1


def test_concurrent_duplicate_deliveries_charge_once(uowf: Any) -> None:
    """Two deliveries in flight at once both reach the provider; one capture is recorded."""
    trip = completed_trip(uowf, fare=1500)
    set_method(uowf, trip.rider_id, "tok_ok")
    barrier = threading.Barrier(2, timeout=30)
    sandbox = SandboxProvider(uowf)

    class Together:
        def check_token(self, token: str) -> None:
            sandbox.check_token(token)

        def charge(self, key: str, token: str, amount: int, currency: str) -> ChargeResult:
            barrier.wait()  # both deliveries have opened the payment before either charges
            return sandbox.charge(key, token, amount, currency)

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        charge_trip(uowf, Together(), trip.id, POLICY).state)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == ["captured", "captured"]
    captured_once(uowf, trip.id, 1500)
    assert payment(uowf, trip.id).attempts == 1  # the loser's attempt left nothing behind


def test_provider_captured_but_worker_died_before_recording(uowf: Any) -> None:
    """The crash window: money moved at the provider, our transaction never ran. The retry
    gets the provider's first answer for the key and records it; nothing is charged again."""
    trip = completed_trip(uowf, fare=800)
    set_method(uowf, trip.rider_id, "tok_ok")
    provider = SandboxProvider(uowf)
    provider.charge(f"trip-{trip.id}-g0", "tok_ok", 800, "USD")  # then the worker "dies"
    assert payment(uowf, trip.id) is None
    assert charge_trip(uowf, provider, trip.id, POLICY).state == "captured"
    captured_once(uowf, trip.id, 800)
    assert provider_records(uowf, trip.id)[f"trip-{trip.id}-g0"].attempts == 1


def test_declined_fails_blocks_the_rider_and_a_new_method_retries(uowf: Any) -> None:
    trip = completed_trip(uowf, fare=1000)
    set_method(uowf, trip.rider_id, "tok_declined")
    provider = SandboxProvider(uowf)
    out = charge_trip(uowf, provider, trip.id, POLICY)
    assert out.state == "failed"
    assert trip_payment_state(uowf, trip.id) == "failed"
    assert ledger(uowf, trip.id) == {}
    with uowf(readonly=True) as uow:
        blocking = billing.blocking_payment(uow, trip.rider_id)
    assert blocking is not None and "declined" in (blocking.last_error or "")
    # A redelivery of the failed charge does not charge (or decline) again.
    assert charge_trip(uowf, provider, trip.id, POLICY).detail == "already settled"

    assert set_method(uowf, trip.rider_id, "tok_ok") == [trip.id]
    assert trip_payment_state(uowf, trip.id) == "pending"
    with uowf(readonly=True) as uow:
        assert billing.blocking_payment(uow, trip.rider_id) is None
    assert charge_trip(uowf, provider, trip.id, POLICY).state == "captured"
    recs = provider_records(uowf, trip.id)
    assert {k[-2:]: r.status for k, r in recs.items()} == {"g0": "declined", "g1": "captured"}
    captured_once(uowf, trip.id, 1000)


def test_timeout_is_retried_then_fails_on_the_final_attempt(uowf: Any) -> None:
    trip = completed_trip(uowf)
    set_method(uowf, trip.rider_id, "tok_timeout")
    provider = SandboxProvider(uowf)
    for attempt in range(1, 4):
        out = charge_trip(uowf, provider, trip.id, POLICY)
        assert out.state == "retry"
        assert payment(uowf, trip.id).attempts == attempt
        assert trip_payment_state(uowf, trip.id) == "pending"
    out = charge_trip(uowf, provider, trip.id, POLICY, final_attempt=True)
    assert out.state == "failed" and "gave up" in out.detail
    assert trip_payment_state(uowf, trip.id) == "failed"
    assert ledger(uowf, trip.id) == {}
    assert list(provider_records(uowf, trip.id).values())[0].status == "error"


def test_flaky_fails_the_first_attempt_then_captures(uowf: Any) -> None:
    trip = completed_trip(uowf, fare=700)
    set_method(uowf, trip.rider_id, "tok_flaky")
    provider = SandboxProvider(uowf)
    assert charge_trip(uowf, provider, trip.id, POLICY).state == "retry"
    assert charge_trip(uowf, provider, trip.id, POLICY).state == "captured"
    captured_once(uowf, trip.id, 700)
    assert payment(uowf, trip.id).attempts == 2


def test_no_method_and_no_fallback_fails_and_fallback_captures(uowf: Any) -> None:
    trip = completed_trip(uowf)
    out = charge_trip(uowf, SandboxProvider(uowf), trip.id, POLICY)
    assert out.state == "failed" and out.detail == "no payment method on file"
    other = completed_trip(uowf, fare=1234)
    fallback = BillingPolicy(commission_bps=2500, fallback_token="tok_ok")
    assert charge_trip(uowf, SandboxProvider(uowf), other.id, fallback).state == "captured"
    captured_once(uowf, other.id, 1234)


def test_only_completed_trips_are_charged(uowf: Any) -> None:
    live = completed_trip(uowf, state=TripState.in_progress)
    assert charge_trip(uowf, SandboxProvider(uowf), live.id, POLICY).state == "skipped"
    assert charge_trip(uowf, SandboxProvider(uowf), "12345", POLICY).state == "skipped"
    assert payment(uowf, live.id) is None


def test_sweep_finds_payments_stuck_in_pending(uowf: Any) -> None:
    now = time.time()
    old = completed_trip(uowf, completed_at=now - 600)  # its enqueue was lost: no payment row
    fresh = completed_trip(uowf, completed_at=now)
    settled = completed_trip(uowf, completed_at=now - 600)
    set_method(uowf, settled.rider_id, "tok_ok")
    charge_trip(uowf, SandboxProvider(uowf), settled.id, POLICY)
    stuck = billing.stuck_payments(uowf, 120)
    assert old.id in stuck
    assert fresh.id not in stuck and settled.id not in stuck


def test_memory_units_of_work_charge_once_too() -> None:
    uowf = memory_uow_factory()
    trip = completed_trip(uowf, fare=4321)
    set_method(uowf, trip.rider_id, "tok_ok")
    provider = SandboxProvider(uowf)
    assert charge_trip(uowf, provider, trip.id, POLICY).state == "captured"
    assert charge_trip(uowf, provider, trip.id, POLICY).state == "captured"
    captured_once(uowf, trip.id, 4321)
    assert billing.stuck_payments(uowf, 0.0, clock=lambda: time.time() + 10) == []
