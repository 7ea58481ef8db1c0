"""Races on the dispatch repositories (driver states, offers, dispatch records): two readers of
one row both save; exactly one gets `Conflict`. Interleaved units on memory, SQLite and
PostgreSQL; two threads with two open units on PostgreSQL, where one pending offer per driver
and per trip is raced too, and a driver's one-statement claim against a concurrent claim and
against a writer that read the row before it."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from dispatch.model import DispatchRecord, DriverState, DriverStatus, Offer, OfferState
from ridehail.kernel.errors import Conflict
from ridehail.kernel.ids import new_id
from tests.repository_races import Race, interleaved, overlapping, overlapping_writes
from tests.trips.test_repository_contract import make_trip

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


def _waiting_on_a_lock(units: Any, pid: int) -> bool:
    with units(readonly=True) as uow:
        return bool(uow.connection.exec_driver_sql(
            f"SELECT count(*) FROM pg_locks WHERE pid = {pid} AND NOT granted").scalar())


def _until_waiting_on_a_lock(units: Any, pid: int, blocked: Future[Any]) -> None:
    """Return once the backend `pid` waits on a lock, the statement `blocked` runs there."""
    deadline = time.monotonic() + 30
    while not _waiting_on_a_lock(units, pid):
        assert time.monotonic() < deadline and not blocked.done(), blocked
        time.sleep(0.01)


def test_a_claim_skips_a_driver_a_concurrent_claim_holds_without_waiting(pg_units: Any) -> None:
    # Both units saw the driver available; A's claim holds the row. B's claim does not wait
    # for A to end (a lock_timeout would stop it if it did): it finds the driver claimed at
    # once, writes nothing, and its dispatch goes on to the next candidate.
    driver = _seeded_driver(pg_units)
    trips = [new_id(), new_id()]
    with pg_units() as a, pg_units() as b:
        assert a.drivers.claim_first([driver], trips[0], T0 + 1).version == 1
        b.connection.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
        assert b.drivers.claim_first([driver], trips[1], T0 + 2).skipped == [(driver, "claimed")]
        a.commit()
        b.commit()
    with pg_units(readonly=True) as uow:
        row = uow.drivers.get(driver)
    assert (row.status, row.trip_id, row.version) == (DriverStatus.offered, trips[0], 1)


def test_a_claim_after_a_concurrent_claim_committed_says_offered(pg_units: Any) -> None:
    # B's unit began before A's claim committed; its claim reads the committed row.
    driver = _seeded_driver(pg_units)
    trips = [new_id(), new_id()]
    with pg_units() as a, pg_units() as b:
        assert a.drivers.claim_first([driver], trips[0], T0 + 1).version == 1
        a.commit()
        assert b.drivers.claim_first([driver], trips[1], T0 + 2).skipped == [(driver, "offered")]
        b.commit()
    with pg_units(readonly=True) as uow:
        assert uow.drivers.get(driver).trip_id == trips[0]


def test_a_save_that_waited_on_a_claim_gets_the_conflict(pg_units: Any) -> None:
    # The driver went offline in a unit that read the row before the claim: its save waits
    # on the claim's row lock and then finds the version gone, instead of freeing a driver
    # who now has an offer.
    driver = _seeded_driver(pg_units)
    trip = new_id()
    with pg_units() as a, pg_units() as b:
        seen = b.drivers.get(driver)
        assert a.drivers.claim_first([driver], trip, T0 + 1).version == 1
        pid = b.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        seen.status = DriverStatus.offline
        with ThreadPoolExecutor(1) as pool:
            saved = pool.submit(b.drivers.save, seen)
            _until_waiting_on_a_lock(pg_units, pid, saved)
            a.commit()
            with pytest.raises(Conflict):
                saved.result(timeout=30)
    with pg_units(readonly=True) as uow:
        row = uow.drivers.get(driver)
    assert (row.status, row.trip_id, row.version) == (DriverStatus.offered, trip, 1)


def test_a_release_that_waited_on_a_concurrent_writer_rechecks_the_trip(pg_units: Any) -> None:
    # A cancel releases the driver it found on its trip; meanwhile another unit moved the
    # driver to another trip and holds the row. The release waits on the lock and then finds
    # the row no longer holding the cancelled trip: it writes nothing and says so.
    trip, other = new_id(), new_id()
    with pg_units() as uow:
        driver = _seed_driver(uow)
        uow.commit()
    with pg_units() as uow:
        assert uow.drivers.claim_first([driver], trip, T0 + 1).version == 1
        uow.commit()
    with pg_units() as a, pg_units() as b:
        st = a.drivers.get(driver)
        st.trip_id, st.status = other, DriverStatus.en_route
        a.drivers.save(st)
        pid = b.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with ThreadPoolExecutor(1) as pool:
            released = pool.submit(b.drivers.release, driver, trip, T0 + 3)
            _until_waiting_on_a_lock(pg_units, pid, released)
            a.commit()
            assert released.result(timeout=30) is None
        b.commit()
    with pg_units(readonly=True) as uow:
        row = uow.drivers.get(driver)
    assert (row.status, row.trip_id, row.version) == (DriverStatus.en_route, other, 2)


def test_a_riders_second_request_waits_for_the_first_and_claims_no_driver(
        pg_units: Any) -> None:
    # Two requests of one rider at once (a double tap): A's trip holds the rider's one open
    # trip (uq_trips_open_rider). B's insert, in the same statement as its claim, waits for
    # A to end, is then refused, and claims nobody: the driver B would have had stays
    # available, and B's unit, refused, still commits nothing of its own.
    with pg_units() as uow:
        mine, theirs = _seed_driver(uow), _seed_driver(uow)
        uow.commit()
    rider = new_id()
    first, second = make_trip(rider), make_trip(rider)
    with pg_units() as a, pg_units() as b:
        assert a.drivers.open_and_claim_first(first, [mine], T0 + 1).driver_id == mine
        pid = b.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with ThreadPoolExecutor(1) as pool:
            claimed = pool.submit(b.drivers.open_and_claim_first, second, [theirs], T0 + 2)
            _until_waiting_on_a_lock(pg_units, pid, claimed)
            a.commit()
            assert claimed.result(timeout=30) is None
        b.commit()
    with pg_units(readonly=True) as uow:
        assert uow.drivers.get(theirs).status == DriverStatus.available
        assert uow.trips.get(second.id) is None
        assert uow.trips.open_for_rider(rider).id == first.id


def test_two_units_appending_to_one_record_both_land(pg_units: Any) -> None:
    # A cancel and an expiry log onto the trip's record at once: the second append waits on
    # the first's row lock, then adds to the array as committed, instead of overwriting it.
    trip = new_id()
    with pg_units() as uow:
        uow.records.add(DispatchRecord(trip, T0))
        uow.commit()
    with pg_units() as a, pg_units() as b:
        a.records.append(trip, T0 + 1, DispatchRecord.entry("expired", T0 + 1))
        pid = b.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with ThreadPoolExecutor(1) as pool:
            appended = pool.submit(b.records.append, trip, T0 + 2,
                                   DispatchRecord.entry("cancelled_by_rider", T0 + 2),
                                   "cancelled_by_rider")
            _until_waiting_on_a_lock(pg_units, pid, appended)
            a.commit()
            appended.result(timeout=30)
        b.commit()
    with pg_units(readonly=True) as uow:
        got = uow.records.get(trip)
    assert [e["kind"] for e in got.events] == ["expired", "cancelled_by_rider"]
    assert (got.outcome, got.version) == ("cancelled_by_rider", 2)


def _seeded_driver(units: Any) -> str:
    with units() as uow:
        driver = _seed_driver(uow)
        uow.commit()
    return driver
