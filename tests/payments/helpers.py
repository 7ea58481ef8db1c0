"""Helpers for the payments tests: a migrated database, completed trips written directly,
and ledger/provider checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ridehail.kernel import ids
from ridehail.kernel.db import make_engine
from ridehail.migrate import upgrade
from ridehail.units import sql_uow_factory
from trips.billing import BillingPolicy
from trips.model import Trip, TripState
from trips.money import split_payment

UowFactory = Callable[..., Any]
POLICY = BillingPolicy(commission_bps=2500, fallback_token=None)


def migrated(url: str) -> tuple[Any, UowFactory]:
    engine = make_engine(url)
    upgrade(url, engine=engine)
    return engine, sql_uow_factory(engine)


def completed_trip(uow_factory: UowFactory, *, fare: int = 1234, rider_id: str | None = None,
                   driver_id: str | None = None, completed_at: float | None = None,
                   state: TripState = TripState.completed) -> Trip:
    """A trip as `Engine.complete` leaves it: fare computed, payment pending."""
    now = time.time() if completed_at is None else completed_at
    done = state == TripState.completed
    trip = Trip(
        id=ids.new_id(), rider_id=rider_id or ids.new_id(), vehicle_class="standard",
        pickup_lat=40.75, pickup_lng=-73.99, dropoff_lat=40.76, dropoff_lng=-73.98,
        requested_at=now - 900, state=state, driver_id=driver_id or ids.new_id(),
        assigned_at=now - 800, started_at=now - 600,
        completed_at=now if done else None, fare_estimate=fare,
        fare_final=fare if done else None, distance_m=2500.0 if done else None,
        duration_s=600.0 if done else None, payment_state="pending" if done else None,
    )
    with uow_factory() as uow:
        uow.trips.add(trip)
        uow.commit()
    return trip


def set_method(uow_factory: UowFactory, rider_id: str, token: str) -> list[str]:
    from trips.billing import set_payment_method

    return set_payment_method(uow_factory, rider_id, token, time.time())


def ledger(uow_factory: UowFactory, trip_id: str) -> dict[str, int]:
    with uow_factory(readonly=True) as uow:
        return {e.kind: e.amount for e in uow.ledger.for_trip(trip_id)}


def payment(uow_factory: UowFactory, trip_id: str) -> Any:
    with uow_factory(readonly=True) as uow:
        return uow.payments.get(trip_id)


def trip_payment_state(uow_factory: UowFactory, trip_id: str) -> str | None:
    with uow_factory(readonly=True) as uow:
        return uow.trips.get(trip_id).payment_state  # type: ignore[no-any-return]


def provider_records(uow_factory: UowFactory, trip_id: str) -> dict[str, Any]:
    """The sandbox's records for a trip's idempotency keys (generations 0..4)."""
    out = {}
    with uow_factory(readonly=True) as uow:
        for g in range(5):
            rec = uow.provider_charges.get(f"trip-{trip_id}-g{g}")
            if rec is not None:
                out[rec.idempotency_key] = rec
    return out


def captured_once(uow_factory: UowFactory, trip_id: str, fare: int) -> None:
    """The invariant: one captured provider charge, three ledger lines that balance."""
    recs = provider_records(uow_factory, trip_id)
    assert [r.status for r in recs.values()].count("captured") == 1, recs
    lines = ledger(uow_factory, trip_id)
    assert set(lines) == {"rider_charge", "driver_payout", "platform_fee"}
    assert sum(lines.values()) == 0
    assert lines["rider_charge"] == -fare
    assert lines["platform_fee"] == split_payment(fare, 2500).platform_fee
    assert payment(uow_factory, trip_id).state == "captured"
    assert trip_payment_state(uow_factory, trip_id) == "captured"


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Poll `predicate` until it is truthy (a bounded loop, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")
