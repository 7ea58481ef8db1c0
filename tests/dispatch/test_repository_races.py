"""Races on the dispatch repositories (driver states, offers, dispatch records): two readers of
one row both save; exactly one gets `Conflict`. Interleaved units on memory, SQLite and
PostgreSQL; two threads with two open units on PostgreSQL, where one pending offer per driver
and per trip is raced too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatch.model import DispatchRecord, DriverState, DriverStatus, Offer, OfferState
from ridehail.kernel.ids import new_id
from tests.conftest import units_on
from tests.repository_races import Race, interleaved, overlapping, overlapping_writes

T0 = 1_767_000_000.0


def _offer(trip_id: str | None = None, driver_id: str | None = None) -> Offer:
    return Offer(id=new_id(), trip_id=trip_id or new_id(), driver_id=driver_id or new_id(),
                 created_at=T0, deadline=T0 + 15, rank=0, distance_m=300.0, eta_s=40.0)


def _seed_driver(uow: Any) -> str:
    state = DriverState(new_id(), "standard", DriverStatus.available, T0)
    uow.drivers.add(state)
    return state.driver_id


def _online_or_offline(state: DriverState, n: int) -> None:
    # A double-tapped status toggle: "offline" and "offered" (a match) at once.
    state.status = DriverStatus.offline if n == 1 else DriverStatus.offered
    state.updated_at = T0 + n


def _seed_offer(uow: Any) -> str:
    offer = _offer()
    uow.offers.add(offer)
    return offer.id


def _accept_or_expire(offer: Offer, n: int) -> None:
    # The driver's accept racing the offer's deadline timer.
    offer.close(OfferState.accepted if n == 1 else OfferState.expired, T0 + n)


def _seed_record(uow: Any) -> str:
    record = DispatchRecord(new_id(), T0)
    uow.records.add(record)
    return record.trip_id


def _log(record: DispatchRecord, n: int) -> None:
    # Two instances logging to one trip's record: a lost update would drop an event.
    record.log("offered", T0 + n, driver_id=str(n))


RACES = {
    "driver states": Race("drivers", _seed_driver, _online_or_offline),
    "offers": Race("offers", _seed_offer, _accept_or_expire),
    "dispatch records": Race("records", _seed_record, _log),
}


@pytest.mark.parametrize("name", RACES)
def test_two_readers_both_save_one_gets_the_conflict(uow_factory: Any, name: str) -> None:
    interleaved(uow_factory, RACES[name])


@pytest.fixture
def pg_units(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    with units_on("postgresql", request, tmp_path) as units:
        yield units


@pytest.mark.parametrize("name", RACES)
def test_two_open_units_save_one_row_on_postgresql(pg_units: Any, name: str) -> None:
    overlapping(pg_units, RACES[name])


def _pending_for_driver(uow: Any, driver: str, n: int) -> None:
    uow.offers.add(_offer(driver_id=driver))


def _pending_for_trip(uow: Any, trip: str, n: int) -> None:
    uow.offers.add(_offer(trip_id=trip))


def _two_closed_offers(uow: Any) -> tuple[str, str]:
    # Two answered offers of one driver; re-opening both at once must leave one pending.
    driver = new_id()
    ids = []
    for _ in range(2):
        offer = _offer(driver_id=driver)
        offer.state = OfferState.rejected
        uow.offers.add(offer)
        ids.append(offer.id)
    return ids[0], ids[1]


def _reopen(uow: Any, ids: tuple[str, str], n: int) -> None:
    offer = uow.offers.get(ids[n - 1])
    offer.state = OfferState.pending
    uow.offers.save(offer)


UNIQUE: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any, int], None]]] = {
    "one pending offer per driver": (lambda uow: new_id(), _pending_for_driver),
    "one pending offer per trip": (lambda uow: new_id(), _pending_for_trip),
    "one pending offer per driver, by save": (_two_closed_offers, _reopen),
}


@pytest.mark.parametrize("rule", UNIQUE)
def test_two_open_units_break_a_uniqueness_rule_on_postgresql(pg_units: Any, rule: str) -> None:
    overlapping_writes(pg_units, *UNIQUE[rule])
