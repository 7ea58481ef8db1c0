"""The memory and SQL dispatch repositories keep one contract (memory, SQLite, PostgreSQL):
driver states, offers and dispatch records. Round trips, every query, the uniqueness rules
(one pending offer per driver and per trip, each a `Conflict`) and rollback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dispatch.model import DispatchRecord, DriverState, DriverStatus, Offer, OfferState
from ridehail.kernel.errors import Conflict
from ridehail.kernel.ids import new_id
from tests.trips.test_repository_contract import make_trip

Units = Callable[..., Any]
T0 = 1_767_000_000.0


def make_offer(trip_id: str | None = None, driver_id: str | None = None, **kw: Any) -> Offer:
    fields: dict[str, Any] = {"created_at": T0, "deadline": T0 + 15, "rank": 0,
                              "distance_m": 420.5, "eta_s": 61.0}
    fields.update(kw)
    return Offer(id=new_id(), trip_id=trip_id or new_id(), driver_id=driver_id or new_id(),
                 **fields)


def store(units: Units, *rows: tuple[str, Any]) -> None:
    with units() as uow:
        for repo, row in rows:
            getattr(uow, repo).add(row)
        uow.commit()


def close(units: Units, offer_id: str, state: OfferState, now: float = T0 + 1) -> None:
    with units() as uow:
        offer = uow.offers.get(offer_id)
        offer.close(state, now)
        uow.offers.save(offer)
        uow.commit()


# --- driver states -----------------------------------------------------------------------------

def test_driver_state_round_trip_and_online(uow_factory: Units) -> None:
    off = DriverState(new_id(), "standard")
    on = DriverState(new_id(), "xl", DriverStatus.available, T0)
    busy = DriverState(new_id(), "standard", DriverStatus.en_route, T0, trip_id=new_id())
    store(uow_factory, ("drivers", off), ("drivers", on), ("drivers", busy))
    with uow_factory() as uow:
        assert uow.drivers.get(busy.driver_id) == busy
        assert uow.drivers.get(busy.driver_id).status is DriverStatus.en_route
        assert uow.drivers.get(new_id()) is None
        assert sorted(d.driver_id for d in uow.drivers.online_page(0, 1000)) == sorted(
            [on.driver_id, busy.driver_id])
        with pytest.raises(Conflict):
            uow.drivers.add(DriverState(on.driver_id, "standard"))
        st = uow.drivers.get(off.driver_id)
        st.status, st.updated_at = DriverStatus.offered, T0 + 3
        uow.drivers.save(st)
        assert st.version == 1
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.drivers.get(off.driver_id) == st
        assert len(uow.drivers.online_page(0, 1000)) == 3


def test_driver_states_many_reads_the_known_ones(uow_factory: Units) -> None:
    states = [DriverState(new_id(), "standard", DriverStatus.available, T0) for _ in range(3)]
    store(uow_factory, *(("drivers", st) for st in states))
    asked = [states[2].driver_id, new_id(), states[0].driver_id]
    with uow_factory(readonly=True) as uow:
        found = uow.drivers.many(asked)
        assert sorted(st.driver_id for st in found) == sorted(
            [states[0].driver_id, states[2].driver_id])
        assert uow.drivers.many([]) == []


def test_online_drivers_are_read_a_page_at_a_time_by_id(uow_factory: Units) -> None:
    states = [DriverState(new_id(), "standard", DriverStatus.available, T0) for _ in range(5)]
    states.append(DriverState(new_id(), "xl", DriverStatus.en_route, T0, trip_id=new_id()))
    offline = DriverState(new_id(), "standard")
    store(uow_factory, *(("drivers", st) for st in [*states, offline]))
    ids = sorted((st.driver_id for st in states), key=int)
    with uow_factory(readonly=True) as uow:
        first = uow.drivers.online_page(0, 4)
        rest = uow.drivers.online_page(int(first[-1].driver_id), 4)
    assert [s.driver_id for s in first + rest] == ids  # ordered, complete, no offline one
    busy = next(s for s in rest + first if s.driver_id == states[-1].driver_id)
    assert (busy.status, busy.vehicle_class, busy.trip_id) == (
        DriverStatus.en_route, "xl", states[-1].trip_id)


def test_changed_drivers_are_read_in_any_status_a_page_at_a_time_by_id(
        uow_factory: Units) -> None:
    # An incremental reconcile's read: rows changed at or after a time, offline ones too (a
    # driver gone offline must be forgotten), ordered and paged by id.
    old = DriverState(new_id(), "standard", DriverStatus.available, T0)
    gone = DriverState(new_id(), "standard", DriverStatus.offline, T0 + 5, version=3)
    busy = DriverState(new_id(), "xl", DriverStatus.en_route, T0 + 10, trip_id=new_id(),
                       version=7)
    store(uow_factory, ("drivers", old), ("drivers", gone), ("drivers", busy))
    with uow_factory(readonly=True) as uow:
        first = uow.drivers.changed_page(T0 + 5, 0, 1)
        rest = uow.drivers.changed_page(T0 + 5, int(first[-1].driver_id), 1)
        last = uow.drivers.changed_page(T0 + 5, int(rest[-1].driver_id), 1)
    assert last == []
    got = {s.driver_id: s for s in first + rest}
    assert [s.driver_id for s in first + rest] == sorted(got, key=int)
    assert got == {gone.driver_id: (gone.driver_id, DriverStatus.offline, "standard", None, 3),
                   busy.driver_id: (busy.driver_id, DriverStatus.en_route, "xl", busy.trip_id,
                                    7)}


def test_a_claim_offers_the_first_available_driver_and_says_why_not_of_those_before(
        uow_factory: Units) -> None:
    free = DriverState(new_id(), "standard", DriverStatus.available, T0)
    later = DriverState(new_id(), "standard", DriverStatus.available, T0)
    busy = DriverState(new_id(), "standard", DriverStatus.en_route, T0, trip_id=new_id())
    store(uow_factory, ("drivers", free), ("drivers", later), ("drivers", busy))
    trip, nobody = new_id(), new_id()
    with uow_factory() as uow:
        # the row's new version; the candidates after the claimed one are not looked at
        assert uow.drivers.claim_first([busy.driver_id, nobody, free.driver_id,
                                        later.driver_id], trip, T0 + 5) == (
            free.driver_id, 1, [(busy.driver_id, "en_route"), (nobody, "unknown")])
        assert uow.drivers.claim_first([free.driver_id, busy.driver_id], new_id(),
                                       T0 + 6) == (None, None, [(free.driver_id, "offered"),
                                                                (busy.driver_id, "en_route")])
        uow.commit()
    with uow_factory(readonly=True) as uow:
        claimed = uow.drivers.get(free.driver_id)
        assert uow.drivers.get(busy.driver_id) == busy  # a miss writes nothing
        assert uow.drivers.get(later.driver_id) == later
    assert (claimed.status, claimed.trip_id, claimed.updated_at, claimed.version) == (
        DriverStatus.offered, trip, T0 + 5, 1)


def test_a_new_trip_refused_claims_no_driver(uow_factory: Units) -> None:
    # A trip request opens its trip and claims its driver together (on PostgreSQL in one
    # statement). The rider has an open trip, so the insert is refused: no driver may be
    # claimed, or a refusal whose reason is gone by the time it is read (a payment settled
    # meanwhile) would open the trip with a driver left offered to nothing.
    free = DriverState(new_id(), "standard", DriverStatus.available, T0)
    rider = new_id()
    store(uow_factory, ("drivers", free), ("trips", make_trip(rider)))
    with uow_factory() as uow:
        assert uow.drivers.open_and_claim_first(make_trip(rider), [free.driver_id], T0 + 5) is None
        assert uow.drivers.get(free.driver_id) == free
        other, nobody = make_trip(new_id()), new_id()
        assert uow.drivers.open_and_claim_first(other, [nobody, free.driver_id], T0 + 6
                                                ) == (free.driver_id, 1, [(nobody, "unknown")])
        assert uow.trips.get(other.id).rider_id == other.rider_id
        assert uow.drivers.get(free.driver_id).trip_id == other.id


def test_an_uncommitted_claim_leaves_the_driver_available(uow_factory: Units) -> None:
    free = DriverState(new_id(), "standard", DriverStatus.available, T0)
    store(uow_factory, ("drivers", free))
    with uow_factory() as uow:
        assert uow.drivers.claim_first([free.driver_id], new_id(), T0 + 5).version == 1
    with uow_factory(readonly=True) as uow:
        assert uow.drivers.get(free.driver_id) == free


def test_a_claim_moves_the_version_on_so_an_earlier_reader_loses(uow_factory: Units) -> None:
    # The driver's own status change read the row before the claim committed: writing it
    # back must not overwrite the claim (it would free a driver who has a pending offer).
    free = DriverState(new_id(), "standard", DriverStatus.available, T0)
    store(uow_factory, ("drivers", free))
    with uow_factory(readonly=True) as uow:
        seen = uow.drivers.get(free.driver_id)
    with uow_factory() as uow:
        assert uow.drivers.claim_first([free.driver_id], new_id(), T0 + 5).version == 1
        uow.commit()
    seen.status = DriverStatus.offline
    with uow_factory() as uow, pytest.raises(Conflict):
        uow.drivers.save(seen)
    with uow_factory(readonly=True) as uow:
        assert uow.drivers.get(free.driver_id).status is DriverStatus.offered


# --- offers ------------------------------------------------------------------------------------

def test_a_release_frees_only_a_driver_whose_row_still_holds_the_trip(
        uow_factory: Units) -> None:
    # A cancel frees the driver it found on the trip; the row may since hold another trip (or
    # none), and then it must stay as it is.
    trip, other = new_id(), new_id()
    held = DriverState(new_id(), "standard", DriverStatus.en_route, T0, trip_id=trip)
    moved_on = DriverState(new_id(), "standard", DriverStatus.offered, T0, trip_id=other)
    free = DriverState(new_id(), "standard", DriverStatus.available, T0)
    store(uow_factory, ("drivers", held), ("drivers", moved_on), ("drivers", free))
    with uow_factory() as uow:
        assert uow.drivers.release(held.driver_id, trip, T0 + 7) == 1  # the new version
        assert uow.drivers.release(moved_on.driver_id, trip, T0 + 7) is None
        assert uow.drivers.release(free.driver_id, trip, T0 + 7) is None
        assert uow.drivers.release(new_id(), trip, T0 + 7) is None
        uow.commit()
    with uow_factory(readonly=True) as uow:
        released = uow.drivers.get(held.driver_id)
        assert uow.drivers.get(moved_on.driver_id) == moved_on  # a miss writes nothing
        assert uow.drivers.get(free.driver_id) == free
    assert (released.status, released.trip_id, released.updated_at, released.version) == (
        DriverStatus.available, None, T0 + 7, 1)


def test_a_release_from_a_status_frees_only_a_driver_still_in_it(uow_factory: Units) -> None:
    # An offer's rejection or expiry frees the driver only while still offered the trip: one
    # who accepted it meanwhile (en route to the same trip) stays en route.
    trip = new_id()
    offered = DriverState(new_id(), "standard", DriverStatus.offered, T0, trip_id=trip)
    accepted = DriverState(new_id(), "standard", DriverStatus.en_route, T0, trip_id=trip)
    store(uow_factory, ("drivers", offered), ("drivers", accepted))
    with uow_factory() as uow:
        assert uow.drivers.release(accepted.driver_id, trip, T0 + 3,
                                   status=DriverStatus.offered) is None
        assert uow.drivers.release(offered.driver_id, trip, T0 + 3,
                                   status=DriverStatus.offered) == 1
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.drivers.get(accepted.driver_id) == accepted  # a miss writes nothing
        freed = uow.drivers.get(offered.driver_id)
    assert (freed.status, freed.trip_id, freed.updated_at) == (DriverStatus.available, None,
                                                               T0 + 3)


def test_a_release_moves_the_version_on_so_an_earlier_reader_loses(
        uow_factory: Units) -> None:
    trip = new_id()
    held = DriverState(new_id(), "standard", DriverStatus.en_route, T0, trip_id=trip)
    store(uow_factory, ("drivers", held))
    with uow_factory(readonly=True) as uow:
        seen = uow.drivers.get(held.driver_id)
    with uow_factory() as uow:
        assert uow.drivers.release(held.driver_id, trip, T0 + 5) == 1
        uow.commit()
    seen.status = DriverStatus.on_trip
    with uow_factory() as uow, pytest.raises(Conflict):
        uow.drivers.save(seen)


def test_withdrawing_closes_only_the_trips_pending_offer_and_returns_it(
        uow_factory: Units) -> None:
    trip, other = new_id(), new_id()
    answered = make_offer(trip)
    pending = make_offer(trip)
    elsewhere = make_offer(other)
    store(uow_factory, ("offers", answered))
    close(uow_factory, answered.id, OfferState.rejected)
    store(uow_factory, ("offers", pending), ("offers", elsewhere))
    with uow_factory() as uow:
        withdrawn = uow.offers.withdraw_pending(trip, T0 + 9)
        assert uow.offers.withdraw_pending(trip, T0 + 10) is None  # nothing pending now
        assert uow.offers.withdraw_pending(new_id(), T0 + 10) is None
        uow.commit()
    assert (withdrawn.id, withdrawn.driver_id, withdrawn.state, withdrawn.responded_at,
            withdrawn.version) == (pending.id, pending.driver_id, OfferState.withdrawn,
                                   T0 + 9, 1)
    with uow_factory(readonly=True) as uow:
        assert uow.offers.get(pending.id) == withdrawn
        assert uow.offers.get(answered.id).state is OfferState.rejected
        assert uow.offers.get(elsewhere.id) == elsewhere
        assert uow.offers.pending_for_trip(trip) is None


def test_offer_round_trip_and_queries(uow_factory: Units) -> None:
    trip, driver = new_id(), new_id()
    first = make_offer(trip, created_at=T0 + 1)
    store(uow_factory, ("offers", first))
    close(uow_factory, first.id, OfferState.rejected, T0 + 2)
    second = make_offer(trip, driver, created_at=T0 + 3, deadline=T0 + 18, rank=1)
    store(uow_factory, ("offers", second))
    with uow_factory(readonly=True) as uow:
        got = uow.offers.get(second.id)
        assert got == second and got.state is OfferState.pending
        assert uow.offers.get(new_id()) is None
        assert [o.id for o in uow.offers.for_trip(trip)] == [first.id, second.id]
        assert uow.offers.for_trip(trip)[0].state is OfferState.rejected
        assert uow.offers.for_trip(trip)[0].responded_at == T0 + 2
        assert uow.offers.for_trip(new_id()) == []
        assert uow.offers.pending_for_trip(trip) == second
        assert uow.offers.pending_for_driver(driver) == [second]
        assert uow.offers.pending_for_driver(first.driver_id) == []
        assert uow.offers.pending_for_trip(new_id()) is None
    close(uow_factory, second.id, OfferState.accepted, T0 + 4)
    with uow_factory(readonly=True) as uow:
        assert uow.offers.pending_for_trip(trip) is None
        assert uow.offers.pending_for_driver(driver) == []
        assert uow.offers.get(second.id).version == 1


def test_expired_pending_offers_oldest_deadline_first(uow_factory: Units) -> None:
    late = make_offer(deadline=T0 + 30)
    early = make_offer(deadline=T0 + 10)
    due_now = make_offer(deadline=T0 + 20)
    answered = make_offer(deadline=T0 + 5)
    store(uow_factory, *(("offers", o) for o in [late, early, due_now, answered]))
    close(uow_factory, answered.id, OfferState.accepted)
    with uow_factory(readonly=True) as uow:
        assert [o.id for o in uow.offers.expired_pending(T0 + 20)] == [early.id, due_now.id]
        assert [o.id for o in uow.offers.expired_pending(T0 + 20, limit=1)] == [early.id]
        assert uow.offers.expired_pending(T0 + 9) == []


@pytest.mark.parametrize("same", ["driver", "trip"])
def test_one_pending_offer_per_driver_and_per_trip(uow_factory: Units, same: str) -> None:
    first = make_offer()
    store(uow_factory, ("offers", first))
    clash = make_offer(**{f"{same}_id": getattr(first, f"{same}_id")})
    with uow_factory() as uow:
        with pytest.raises(Conflict):
            uow.offers.add(clash)
        assert uow.offers.get(first.id) == first  # the unit is still usable
    close(uow_factory, first.id, OfferState.expired)
    store(uow_factory, ("offers", clash))  # the first is no longer pending: now it may
    with uow_factory() as uow:
        old = uow.offers.get(first.id)
        old.state = OfferState.pending  # re-opening a closed offer clashes with the new one
        with pytest.raises(Conflict):
            uow.offers.save(old)
    with uow_factory(readonly=True) as uow:
        assert uow.offers.get(first.id).state is OfferState.expired
        pending = uow.offers.pending_for_trip(clash.trip_id)
        assert pending is not None and pending.id == clash.id


# --- dispatch records --------------------------------------------------------------------------

def test_dispatch_record_round_trip_keeps_its_events(uow_factory: Units) -> None:
    record = DispatchRecord(new_id(), T0)
    record.log("search", T0, radius_m=1500.0, found=3, vehicle_class="standard")
    store(uow_factory, ("records", record))
    driver = new_id()
    with uow_factory() as uow:
        with pytest.raises(Conflict):
            uow.records.add(DispatchRecord(record.trip_id, T0 + 1))
        got = uow.records.get(record.trip_id)
        assert got == record and got.events[0]["found"] == 3
        got.log("offered", T0 + 1, driver_id=driver, rank=0)
        got.outcome = "assigned"
        uow.records.save(got)
        uow.commit()
    with uow_factory() as uow:
        again = uow.records.get(record.trip_id)
        assert again == got and again.version == 1
        assert again.tried_drivers() == {driver}
        assert uow.records.get(new_id()) is None
        again.events.append({"kind": "not stored", "at": T0})  # a copy, not the stored row
        assert len(uow.records.get(record.trip_id).events) == 2


def test_an_offer_carries_its_trips_first_record_or_neither_is_kept(uow_factory: Units) -> None:
    driver = new_id()
    offer = make_offer(driver_id=driver)
    record = DispatchRecord(offer.trip_id, T0, outcome=None)
    record.log("offered", T0, driver_id=driver, offer_id=offer.id, rank=0)
    with uow_factory() as uow:
        uow.offers.add(offer, record)
        uow.commit()
    rival = make_offer(driver_id=driver)  # a second pending offer of the driver
    rival_record = DispatchRecord(rival.trip_id, T0 + 1)
    again = make_offer(trip_id=offer.trip_id)  # the trip's record is stored already
    for refused, its_record in ((rival, rival_record), (again, DispatchRecord(offer.trip_id,
                                                                              T0 + 2))):
        with uow_factory() as uow, pytest.raises(Conflict):
            uow.offers.add(refused, its_record)  # the unit is not committed
    with uow_factory(readonly=True) as uow:
        assert uow.offers.get(offer.id) == offer
        assert uow.records.get(offer.trip_id) == record
        assert uow.offers.get(rival.id) is None and uow.offers.get(again.id) is None
        assert uow.records.get(rival.trip_id) is None


def test_an_appended_event_lands_after_the_stored_ones_without_a_read(
        uow_factory: Units) -> None:
    record = DispatchRecord(new_id(), T0, outcome="assigned")
    record.log("offered", T0, driver_id="7", rank=0, eta_s=41.5)
    store(uow_factory, ("records", record))
    fresh = new_id()
    with uow_factory() as uow:
        uow.records.append(record.trip_id, T0 + 1, DispatchRecord.entry(
            "withdrawn", T0 + 1, driver_id="7", offer_id="9"))  # keeps the outcome
        uow.records.append(record.trip_id, T0 + 2, DispatchRecord.entry(
            "cancelled_by_rider", T0 + 2, reason=None), outcome="cancelled_by_rider")
        uow.records.append(fresh, T0 + 3, DispatchRecord.entry("rider_no_show", T0 + 3))
        uow.commit()
    with uow_factory(readonly=True) as uow:
        got, new = uow.records.get(record.trip_id), uow.records.get(fresh)
    assert got.events == [
        {"kind": "offered", "at": T0, "driver_id": "7", "rank": 0, "eta_s": 41.5},
        {"kind": "withdrawn", "at": T0 + 1, "driver_id": "7", "offer_id": "9"},
        {"kind": "cancelled_by_rider", "at": T0 + 2, "reason": None}]
    assert (got.outcome, got.version) == ("cancelled_by_rider", 2)
    assert new == DispatchRecord(fresh, T0 + 3, [{"kind": "rider_no_show", "at": T0 + 3}])


# --- rollback ----------------------------------------------------------------------------------

def test_an_uncommitted_unit_leaves_nothing(uow_factory: Units) -> None:
    driver = DriverState(new_id(), "standard", DriverStatus.available, T0)
    offer = make_offer(driver_id=driver.driver_id)
    record = DispatchRecord(offer.trip_id, T0)
    store(uow_factory, ("drivers", driver), ("offers", offer), ("records", record))
    dropped = make_offer()
    with pytest.raises(RuntimeError), uow_factory() as uow:
        st = uow.drivers.get(driver.driver_id)
        st.status, st.trip_id = DriverStatus.en_route, offer.trip_id
        uow.drivers.save(st)
        uow.drivers.add(DriverState(new_id(), "xl", DriverStatus.available, T0))
        o = uow.offers.get(offer.id)
        o.close(OfferState.accepted, T0 + 1)
        uow.offers.save(o)
        uow.offers.add(dropped)
        rec = uow.records.get(record.trip_id)
        rec.log("accepted", T0 + 1, driver_id=driver.driver_id)
        uow.records.save(rec)
        uow.records.add(DispatchRecord(dropped.trip_id, T0))
        raise RuntimeError("the use case failed half way")
    with uow_factory(readonly=True) as uow:
        assert uow.drivers.get(driver.driver_id) == driver
        assert [d.driver_id for d in uow.drivers.online_page(0, 1000)] == [driver.driver_id]
        assert uow.offers.get(offer.id) == offer
        assert uow.offers.pending_for_driver(driver.driver_id) == [offer]
        assert uow.offers.get(dropped.id) is None
        assert uow.offers.pending_for_trip(dropped.trip_id) is None
        assert uow.offers.for_trip(dropped.trip_id) == []
        assert uow.records.get(record.trip_id) == record
        assert uow.records.get(dropped.trip_id) is None
