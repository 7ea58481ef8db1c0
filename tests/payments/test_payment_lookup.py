"""A capture whose answer was lost is recorded, never charged twice (issue 13, item 14): the
last retry times out, the payment is marked failed, the rider adds a method, and the re-opened
payment asks the provider, by the earlier key, whether that capture happened."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ridehail.settings import Settings
from ridehail.units import memory_uow_factory
from trips.billing import charge_trip
from trips.payments import ProviderUnavailable
from trips.sandbox import SandboxProvider

from .helpers import (
    POLICY,
    captured_once,
    completed_trip,
    ledger,
    payment,
    provider_records,
    set_method,
    trip_payment_state,
)


@pytest.fixture
def uowf(any_db_settings: Settings) -> Iterator[Any]:
    from .helpers import migrated

    engine, factory = migrated(any_db_settings.database_url)
    yield factory
    engine.dispose()


def lose_the_answer(uowf: Any, provider: Any) -> Any:
    """A trip whose last charge attempt captured at the provider but timed out for us."""
    trip = completed_trip(uowf, fare=1500)
    set_method(uowf, trip.rider_id, "tok_lost")
    out = charge_trip(uowf, provider, trip.id, POLICY, final_attempt=True)
    assert out.state == "failed" and trip_payment_state(uowf, trip.id) == "failed"
    assert provider_records(uowf, trip.id)[f"trip-{trip.id}-g0"].status == "captured"
    return trip


def test_a_lost_capture_is_recorded_not_charged_again(uowf: Any) -> None:
    provider = SandboxProvider(uowf)
    trip = lose_the_answer(uowf, provider)
    assert set_method(uowf, trip.rider_id, "tok_ok") == [trip.id]
    out = charge_trip(uowf, provider, trip.id, POLICY)
    assert out.state == "captured"
    # One capture at the provider (the first key's), none under the new key.
    statuses = {k[-2:]: r.status for k, r in provider_records(uowf, trip.id).items()}
    assert statuses == {"g0": "captured"}
    assert payment(uowf, trip.id).provider_charge_id == f"ch_trip-{trip.id}-g0"
    captured_once(uowf, trip.id, 1500)
    # A redelivery records nothing more.
    assert charge_trip(uowf, provider, trip.id, POLICY).state == "captured"
    assert ledger(uowf, trip.id) == {"rider_charge": -1500, "driver_payout": 1125,
                                     "platform_fee": 375}


def test_a_provider_that_cannot_answer_the_lookup_is_retried() -> None:
    uowf = memory_uow_factory()
    provider = SandboxProvider(uowf)
    trip = lose_the_answer(uowf, provider)
    set_method(uowf, trip.rider_id, "tok_ok")

    class Down(SandboxProvider):
        def lookup(self, idempotency_key: str) -> Any:
            raise ProviderUnavailable("provider timeout")

    assert charge_trip(uowf, Down(uowf), trip.id, POLICY).state == "retry"
    assert f"trip-{trip.id}-g1" not in provider_records(uowf, trip.id)  # nothing charged
    assert charge_trip(uowf, provider, trip.id, POLICY).state == "captured"
    captured_once(uowf, trip.id, 1500)
