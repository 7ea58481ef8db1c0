"""The dispatch and trip rules, driven through the Engine facade on the in-memory unit of work
with a simulated clock: no Flask, no database, no threads. Each test names the rule it holds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from dispatch import drivers as drivers_module
from dispatch.engine import DispatchConfig, Engine, Hooks
from dispatch.eta import EtaModel
from dispatch.model import (
    DispatchRecord,
    DriverBusy,
    DriverState,
    DriverStatus,
    NotOnline,
    Offer,
    OfferClosed,
    OfferNotFound,
    OfferState,
    OutsideServiceArea,
    RiderBusy,
)
from dispatch.repository import MemoryDriverStates
from geoindex import GeoIndex
from ridehail.kernel.units import MemoryStore, UnitAlreadyOpen
from ridehail.units import memory_uow_factory
from simulator.clock import SimClock
from trips.area import ServiceArea
from trips.fares import NYC_YELLOW_2016
from trips.model import PaymentRequired, Trip, TripNotFound, TripState
from trips.payments import Payment
from trips.repository import MemoryTripRepository

PICKUP = (40.7580, -73.9855)  # Times Square
DROPOFF = (40.7680, -73.9819)
M = 1 / 111_320  # about a metre of latitude


@dataclass
class Kit:
    engine: Engine
    clock: SimClock
    store: MemoryStore
    completed: list[str] = field(default_factory=list)
    finished: list[tuple[str, str]] = field(default_factory=list)

    def units(self, readonly: bool = False):  # noqa: ANN201 - the wiring's factory
        return memory_uow_factory(self.store)(readonly)

    def driver(self, driver_id: str, metres_north: float, vclass: str = "standard") -> str:
        self.engine.go_online(driver_id, vclass)
        self.engine.update_location(driver_id, PICKUP[0] + metres_north * M, PICKUP[1])
        self.engine.index.publish()
        return driver_id

    def status(self, driver_id: str) -> DriverStatus:
        with self.units(readonly=True) as uow:
            st = uow.drivers.get(driver_id)
        assert st is not None
        return st.status

    def pending_offer(self, driver_id: str) -> str:
        offers = self.engine.pending_offers(driver_id)
        assert len(offers) == 1, f"driver {driver_id} has {len(offers)} pending offers"
        return offers[0].id


def make_kit(policy: str = "greedy", area: ServiceArea | None = None,
             eta: EtaModel | None = None, **config: float) -> Kit:
    clock = SimClock(start=1_700_000_000.0)
    store = MemoryStore()
    ids = itertools.count(1000)
    kit_holder: dict[str, Kit] = {}
    hooks = Hooks(trip_completed=lambda t: kit_holder["kit"].completed.append(t),
                  trip_finished=lambda t, s: kit_holder["kit"].finished.append((t, s)))
    index = GeoIndex(backend="quadtree", ttl_s=60.0, clock=clock.now)
    engine = Engine(memory_uow_factory(store), index, new_id=lambda: str(next(ids)),
                    clock=clock, timers=clock, tariff=NYC_YELLOW_2016, service_area=area,
                    config=DispatchConfig(**{"offer_timeout_s": 15.0, "policy": policy,
                                             "batch_window_s": 2.0, **config}),
                    hooks=hooks, eta=eta)
    kit = Kit(engine, clock, store)
    kit_holder["kit"] = kit
    return kit


@pytest.fixture
def kit() -> Kit:
    return make_kit()


def test_a_request_is_offered_to_the_nearest_available_driver(kit: Kit) -> None:
    kit.driver("1", 300)
    kit.driver("2", 100)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    assert trip.state == TripState.requested and trip.fare_estimate is not None
    assert kit.engine.pending_offers("1") == []
    kit.pending_offer("2")
    assert kit.status("2") == DriverStatus.offered and kit.status("1") == DriverStatus.available


def test_a_request_commits_its_trip_already_offered(kit: Kit) -> None:
    # No unit of work ever commits the trip unmatched, so a cancel (in any process) cannot
    # come between the trip and its offer and leave a pending offer on a cancelled trip.
    kit.driver("1", 100)
    seen: list[tuple[str, int]] = []
    factory = kit.engine.matcher.units

    def units(readonly: bool = False):  # noqa: ANN202 - the wiring's factory
        uow = factory(readonly)
        commit = uow.commit

        def checked() -> None:
            commit()
            with kit.units(readonly=True) as view:
                for trip in view.trips.values():
                    seen.append((trip.state.value, len(view.offers.for_trip(trip.id))))
        uow.commit = checked
        return uow
    kit.engine.matcher.units = units
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    assert seen == [("requested", 1)]


def test_a_claim_that_lost_after_writing_is_rolled_back_and_the_request_still_opens(
        kit: Kit) -> None:
    # Driver 2's state says available but a pending offer of theirs is stored (another
    # process's claim, half seen): the offer's insert loses after the driver's write. The
    # unit is rolled back, trip and all, and the request takes the two steps.
    kit.driver("1", 300)
    kit.driver("2", 100)
    with kit.units() as uow:
        uow.offers.add(Offer("900", "901", "2", kit.clock.now(), kit.clock.now() + 15, 0,
                             100.0, 20.0))
        uow.commit()
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    assert trip.state == TripState.requested
    assert kit.engine.get_trip(trip.id).rider_id == "50"
    assert kit.pending_offer("1") and kit.status("1") == DriverStatus.offered
    assert kit.status("2") == DriverStatus.available  # the lost claim was rolled back
    with kit.units(readonly=True) as uow:
        assert [o.driver_id for o in uow.offers.for_trip(trip.id)] == ["1"]
        assert uow.records.get(trip.id) is not None


def test_accepting_assigns_the_driver_and_claims_them(kit: Kit) -> None:
    kit.driver("1", 100)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    assigned = kit.engine.accept_offer(kit.pending_offer("1"), "1")
    assert assigned.state == TripState.driver_assigned and assigned.driver_id == "1"
    assert kit.status("1") == DriverStatus.en_route
    assert kit.engine.get_trip(trip.id).driver_id == "1"


def test_an_offer_is_accepted_only_by_its_driver(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.driver("2", 900)
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    offer_id = kit.pending_offer("1")
    with pytest.raises(OfferNotFound):
        kit.engine.accept_offer(offer_id, "2")
    assert kit.status("2") == DriverStatus.available


def test_an_offer_is_accepted_at_most_once(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    offer_id = kit.pending_offer("1")
    kit.engine.accept_offer(offer_id, "1")
    with pytest.raises(OfferClosed):
        kit.engine.accept_offer(offer_id, "1")


def test_an_offer_is_not_accepted_after_its_deadline(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    offer_id = kit.pending_offer("1")
    kit.clock._now += 15.0  # at the deadline, before the timer has run
    with pytest.raises(OfferClosed):
        kit.engine.accept_offer(offer_id, "1")


def test_a_rejected_offer_goes_to_the_next_driver(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.driver("2", 300)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    kit.engine.reject_offer(kit.pending_offer("1"), "1")
    kit.pending_offer("2")
    assert kit.status("1") == DriverStatus.available
    # The driver who declined is never offered this trip again.
    kit.engine.reject_offer(kit.pending_offer("2"), "2")
    assert kit.engine.get_trip(trip.id).state == TripState.no_driver_found
    assert (trip.id, "no_driver_found") in kit.finished


def test_an_expired_offer_frees_the_driver_and_goes_to_the_next(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.driver("2", 300)
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    first = kit.pending_offer("1")
    kit.clock.run_until(kit.clock.now() + 15.0)
    with kit.units(readonly=True) as uow:
        offer = uow.offers.get(first)
    assert offer is not None and offer.state == OfferState.expired
    assert kit.status("1") == DriverStatus.available
    kit.pending_offer("2")


def test_no_driver_in_reach_ends_the_trip(kit: Kit) -> None:
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    assert trip.state == TripState.no_driver_found


def test_a_driver_with_a_live_trip_gets_no_second_offer(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    kit.engine.accept_offer(kit.pending_offer("1"), "1")
    second = kit.engine.request_trip("51", PICKUP, DROPOFF)
    assert second.state == TripState.no_driver_found
    assert kit.engine.pending_offers("1") == []


def test_a_rider_has_one_open_trip(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    with pytest.raises(RiderBusy):
        kit.engine.request_trip("50", PICKUP, DROPOFF)


def test_a_rider_whose_payment_failed_may_not_request(kit: Kit) -> None:
    with kit.units() as uow:
        uow.payments.add(Payment("77", "50", "1", 900, "USD", state="failed",
                                 last_error="card declined", created_at=0.0, updated_at=0.0))
        uow.commit()
    kit.driver("1", 100)
    with pytest.raises(PaymentRequired) as info:
        kit.engine.request_trip("50", PICKUP, DROPOFF)
    assert info.value.trip_id == "77"
    with kit.units(readonly=True) as uow:
        assert uow.trips.open_for_rider("50") is None
    assert kit.status("1") == DriverStatus.available


def test_a_payment_settled_between_the_refusal_and_its_reason_lets_the_trip_open(
        kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    # The trip's insert was refused for the failed payment; before the request read which
    # rule refused it, the rider's new method settled the payment. Nothing refuses the trip
    # now, so it opens rather than answering that the rider has an open trip (they have not).
    with kit.units() as uow:
        uow.payments.add(Payment("77", "50", "1", 900, "USD", state="failed",
                                 last_error="card declined", created_at=0.0, updated_at=0.0))
        uow.commit()
    kit.driver("1", 100)
    refuse = MemoryTripRepository.open

    def settled_meanwhile(repo: MemoryTripRepository, trip: Trip) -> bool:
        opened = refuse(repo, trip)
        kit.store.table("payments")["77"].state = "captured"
        return opened
    monkeypatch.setattr(MemoryTripRepository, "open", settled_meanwhile)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    assert trip.state == TripState.requested
    assert kit.engine.pending_offers("1")[0].trip_id == trip.id


def test_requests_outside_the_service_area_are_refused() -> None:
    from shapely.geometry import box

    area = ServiceArea(box(-74.0, 40.75, -73.97, 40.77), "midtown")
    kit = make_kit(area=area)
    with pytest.raises(OutsideServiceArea) as info:
        kit.engine.request_trip("50", PICKUP, (40.70, -73.99))
    assert info.value.field == "dropoff"


def test_a_refused_request_is_not_demand_for_surge(kit: Kit) -> None:
    from trips.surge import SurgePricer

    kit.engine.supply.pricer = SurgePricer(clock=kit.clock.now)
    kit.driver("1", 100)
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    pricer = kit.engine.supply.pricer
    cell = pricer.cell(*PICKUP)
    before = pricer.demand(cell)
    for _ in range(5):
        with pytest.raises(RiderBusy):
            kit.engine.request_trip("50", PICKUP, DROPOFF)
    assert pricer.demand(cell) == before == 1


def test_a_driver_who_cancels_before_pickup_hands_the_trip_back(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.driver("2", 300)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    kit.engine.accept_offer(kit.pending_offer("1"), "1")
    back = kit.engine.cancel(trip.id, "driver", "1", "flat tyre")
    assert back.state == TripState.requested and back.driver_id is None
    assert kit.status("1") == DriverStatus.available
    kit.pending_offer("2")  # matched again, without the driver who cancelled
    assert kit.engine.pending_offers("1") == []


def test_a_rider_who_cancels_withdraws_the_pending_offer(kit: Kit) -> None:
    kit.driver("1", 100)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    offer_id = kit.pending_offer("1")
    cancelled = kit.engine.cancel(trip.id, "rider", "50")
    assert cancelled.state == TripState.cancelled
    with kit.units(readonly=True) as uow:
        offer = uow.offers.get(offer_id)
    assert offer is not None and offer.state == OfferState.withdrawn
    assert kit.status("1") == DriverStatus.available
    assert (trip.id, "cancelled") in kit.finished


def test_only_the_trips_parties_cancel_it(kit: Kit) -> None:
    kit.driver("1", 100)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    with pytest.raises(TripNotFound):
        kit.engine.cancel(trip.id, "rider", "51")
    with pytest.raises(TripNotFound):
        kit.engine.cancel(trip.id, "driver", "1")  # offered, not assigned


def test_going_offline_withdraws_the_offer_and_rematches(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.driver("2", 300)
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    kit.pending_offer("1")
    kit.engine.go_offline("1")
    assert kit.status("1") == DriverStatus.offline
    kit.pending_offer("2")
    with pytest.raises(NotOnline):
        kit.engine.update_location("1", *PICKUP)


def test_a_driver_on_a_trip_cannot_go_offline(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.engine.request_trip("50", PICKUP, DROPOFF)
    kit.engine.accept_offer(kit.pending_offer("1"), "1")
    with pytest.raises(DriverBusy):
        kit.engine.go_offline("1")


def test_the_lifecycle_prices_the_trace_and_frees_the_driver(kit: Kit) -> None:
    kit.driver("1", 100)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    kit.engine.accept_offer(kit.pending_offer("1"), "1")
    kit.engine.arrive(trip.id, "1")
    kit.engine.start(trip.id, "1")
    assert kit.status("1") == DriverStatus.on_trip
    for i in range(1, 11):  # about 1.1 km north in 5 minutes
        kit.clock._now += 30.0
        kit.engine.update_location("1", PICKUP[0] + i * 111 * M, PICKUP[1])
    done = kit.engine.complete(trip.id, "1")
    assert done.state == TripState.completed
    assert done.distance_m is not None and 1000 < done.distance_m < 1300
    assert done.fare_final is not None and done.fare_final > NYC_YELLOW_2016.base
    assert kit.status("1") == DriverStatus.available
    assert kit.completed == [trip.id]


def test_only_the_assigned_driver_moves_the_trip(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.driver("2", 300)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    kit.engine.accept_offer(kit.pending_offer("1"), "1")
    with pytest.raises(TripNotFound):
        kit.engine.arrive(trip.id, "2")


def test_who_may_view_a_trip(kit: Kit) -> None:
    kit.driver("1", 100)
    kit.driver("2", 300)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    assert kit.engine.trip_for(trip.id, "driver", "1").id == trip.id  # its offer is pending
    kit.engine.reject_offer(kit.pending_offer("1"), "1")
    assert kit.engine.trip_for(trip.id, "rider", "50").id == trip.id
    assert kit.engine.trip_for(trip.id, "driver", "2").id == trip.id  # offered now
    # A driver who rejected (or let the offer expire) no longer sees the trip.
    for role, who in (("rider", "51"), ("driver", "1"), ("driver", "3"), ("service", "50")):
        with pytest.raises(TripNotFound):
            kit.engine.trip_for(trip.id, role, who)
    kit.clock.run_until(kit.clock.now() + 15.0)  # driver 2's offer expires
    with pytest.raises(TripNotFound):
        kit.engine.trip_for(trip.id, "driver", "2")


def test_offers_come_with_their_trips(kit: Kit) -> None:
    kit.driver("1", 100)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    [(offer, offered_trip)] = kit.engine.offers_with_trips("1")
    assert offer.trip_id == trip.id and offered_trip.id == trip.id


def test_the_batched_policy_gives_each_trip_its_best_distinct_driver() -> None:
    kit = make_kit(policy="batched")
    kit.driver("1", 100)
    kit.driver("2", 400)
    a = kit.engine.request_trip("50", PICKUP, DROPOFF)
    b = kit.engine.request_trip("51", (PICKUP[0] + 350 * M, PICKUP[1]), DROPOFF)
    assert kit.engine.pending_offers("1") == [] and kit.engine.pending_offers("2") == []
    kit.clock.run_until(kit.clock.now() + 2.0)
    # Greedy in arrival order would give both the nearer driver 1 to trip a and leave b with
    # 2; the assignment gives a the driver at 100 m and b the one 50 m away from it.
    assert kit.engine.pending_offers("1")[0].trip_id == a.id
    assert kit.engine.pending_offers("2")[0].trip_id == b.id


def test_opening_an_open_unit_of_work_is_an_error(kit: Kit) -> None:
    unit = kit.units()
    with unit, pytest.raises(UnitAlreadyOpen), unit:
        pass


def test_a_batch_of_unknown_drivers_costs_one_read() -> None:
    clock = SimClock(start=1_700_000_000.0)
    store = MemoryStore()
    opened: list[bool] = []
    plain = memory_uow_factory(store)

    def counting(readonly: bool = False):  # noqa: ANN202 - the factory's own type
        opened.append(readonly)
        return plain(readonly)

    engine = Engine(counting, GeoIndex(backend="quadtree", ttl_s=60.0, clock=clock.now),
                    new_id=lambda: "1", clock=clock, timers=clock, tariff=NYC_YELLOW_2016)
    engine.go_online("7", "standard")
    engine.drivers.entries.clear()  # as if another process had taken it online
    opened.clear()
    rows = [(str(10_000 + i), PICKUP[0], PICKUP[1], None) for i in range(5000)]
    accepted, rejected = engine.update_locations([*rows, ("7", *PICKUP, None)])
    assert accepted == 1 and len(rejected) == 5000
    assert {r["reason"] for r in rejected} == {"offline"}
    assert opened == [True]


def set_state_elsewhere(kit: Kit, driver_id: str, status: DriverStatus, vclass: str = "standard",
                        trip_id: str | None = None, at: float | None = None) -> None:
    """Another process's committed change (at `at`, else now) whose driver event never
    arrived here."""
    at = kit.clock.now() if at is None else at
    with kit.units() as uow:
        st = uow.drivers.get(driver_id)
        if st is None:
            uow.drivers.add(DriverState(driver_id, vclass, status, at, trip_id))
        else:
            st.status, st.trip_id, st.updated_at = status, trip_id, at
            uow.drivers.save(st)
        uow.commit()


def test_reconcile_repairs_lost_driver_events_across_pages(
        kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drivers_module, "RECONCILE_PAGE", 2)
    gone = [kit.driver(str(i), i * 10) for i in range(1, 6)]
    for d in gone:
        set_state_elsewhere(kit, d, DriverStatus.offline)
    busy = kit.driver("7", 70)
    set_state_elsewhere(kit, busy, DriverStatus.en_route, trip_id="99")
    stranger = "8"
    set_state_elsewhere(kit, stranger, DriverStatus.available, vclass="xl")
    assert kit.engine.reconcile() == 2
    directory = kit.engine.drivers.entries
    assert not set(gone) & set(directory)
    assert (directory[busy].status, directory[busy].trip_id) == (DriverStatus.en_route, "99")
    assert directory[stranger].vehicle_class == "xl"
    kit.engine.index.publish()
    assert {n.driver_id for n in kit.engine.index.snapshot().nearest(*PICKUP, k=10,
                                                                     radius_m=5000)} == set()


def spy_pages(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The driver ids each kind of reconcile page returned, as the passes read them."""
    read: dict[str, list[str]] = {"online_page": [], "changed_page": []}
    for name in read:
        real = getattr(MemoryDriverStates, name)

        def spy(self: Any, *args: Any, _real: Any = real, _name: str = name) -> Any:
            page = _real(self, *args)
            read[_name] += [s.driver_id for s in page]
            return page

        monkeypatch.setattr(MemoryDriverStates, name, spy)
    return read


def test_a_reconcile_between_full_passes_reads_only_the_drivers_changed_since(
        kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(1, 6):
        kit.driver(str(i), i * 10)
    read = spy_pages(kit, monkeypatch)
    assert kit.engine.reconcile() == 5  # the first pass reads every online driver
    assert sorted(read["online_page"]) == ["1", "2", "3", "4", "5"]
    # Later passes read the changes since the pass before, less the slack: the drivers'
    # coming online is read once more, then no longer.
    kit.clock.run_until(kit.clock.now() + 2 * drivers_module.RECONCILE_SLACK_S)
    kit.engine.reconcile()
    set_state_elsewhere(kit, "3", DriverStatus.en_route, trip_id="99")
    set_state_elsewhere(kit, "5", DriverStatus.offline)
    read["online_page"].clear()
    read["changed_page"].clear()
    kit.clock.run_until(kit.clock.now() + 10.0)
    assert kit.engine.reconcile() == 4
    assert read == {"online_page": [], "changed_page": ["3", "5"]}
    directory = kit.engine.drivers.entries
    assert (directory["3"].status, directory["3"].trip_id) == (DriverStatus.en_route, "99")
    assert "5" not in directory


def test_a_full_reconcile_pass_comes_round_and_repairs_what_changes_missed(
        kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    kit.driver("1", 10)
    kit.engine.reconcile()
    # A change whose row time is older than the slack (a clock far behind, a commit that
    # waited): changes-only passes cannot see it; the next full pass does.
    set_state_elsewhere(kit, "1", DriverStatus.en_route, trip_id="9",
                        at=kit.clock.now() - 10 * drivers_module.RECONCILE_SLACK_S)
    kit.clock.run_until(kit.clock.now() + 10.0)
    kit.engine.reconcile()
    assert kit.engine.drivers.entries["1"].status == DriverStatus.available
    kit.clock.run_until(kit.clock.now() + drivers_module.FULL_RECONCILE_S)
    kit.engine.reconcile()
    assert kit.engine.drivers.entries["1"].status == DriverStatus.en_route


def test_a_driver_who_comes_online_during_reconcile_is_not_forgotten(
        kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drivers_module, "RECONCILE_PAGE", 2)
    for i in range(10, 15):
        kit.driver(str(i), i)
    directory = kit.engine.drivers
    plain = directory.units
    reads: list[bool] = []

    def units(readonly: bool = False):  # noqa: ANN202 - the factory's own type
        if readonly:
            reads.append(True)
            if len(reads) == 2:  # between the first and the second page
                directory.units = plain
                kit.engine.go_online("3", "standard")
                directory.units = units
        return plain(readonly)

    directory.units = units
    kit.engine.reconcile()
    directory.units = plain
    assert len(reads) >= 3
    assert "3" in directory.entries


def test_batch_candidates_are_each_trips_own_search() -> None:
    """The batched policy's one columnar query per class and radius step ranks, for every
    trip, exactly the candidates its own search would (class, exclusions, growing radius)."""
    kit = make_kit(policy="batched")
    for i, north in enumerate([40, 90, 150, 260, 700, 1300, 2200, 3100, 4400]):
        kit.driver(f"s{i}", north)
        kit.driver(f"w{i}", -north, vclass="xl" if i % 2 else "standard")
    asks = [(0.0, "standard", set()), (500.0, "standard", {"s0", "s1", "w0"}),
            (-1000.0, "xl", set()), (4400.0, "standard", {"s8"}), (-4300.0, "xl", {"w7"}),
            (30_000.0, "standard", set())]  # the last: nobody within reach
    trips = []
    for n, (north, vclass, exclude) in enumerate(asks):
        trip = kit.engine.request_trip(f"r{n}", (PICKUP[0] + north * M, PICKUP[1]), DROPOFF,
                                       vclass)
        trips.append((trip, exclude, DispatchRecord(trip.id, kit.clock.now())))
    matcher = kit.engine.matcher
    batch = matcher.candidates_many(trips)
    assert list(batch) == [t.id for t, _, _ in trips]
    for trip, exclude, _ in trips:
        alone = matcher.candidates(trip, exclude, DispatchRecord(trip.id, kit.clock.now()))
        assert batch[trip.id] == alone
        assert not {n.driver_id for _, n in alone} & exclude
    assert batch[trips[2][0].id] and all(n.vehicle_class == "xl"
                                         for _, n in batch[trips[2][0].id])
    assert batch[trips[-1][0].id] == []
