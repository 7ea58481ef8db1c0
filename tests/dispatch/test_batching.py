"""The batched policy's settings against long pickups (dispatch/batching.py): a trip held for
later windows, the pickup-ETA cap that grows with waiting, and forward dispatch to a driver
about to finish a trip. The Engine on the in-memory unit of work with a simulated clock; ETAs
are the straight-line model's (1.3 x distance at 8 m/s: 1,000 m is 162.5 s)."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from dispatch.clock import SystemClock, ThreadTimers
from dispatch.engine import DispatchConfig, Engine, Hooks
from dispatch.model import DriverStatus, Offer
from geoindex import GeoIndex
from ridehail.kernel.units import MemoryStore
from ridehail.units import memory_uow_factory
from tests.dispatch.test_engine_rules import DROPOFF, PICKUP, Kit, M, make_kit
from trips.fares import NYC_YELLOW_2016
from trips.model import TripState


def place(kit: Kit, driver_id: str, lat: float, lng: float) -> None:
    kit.engine.update_location(driver_id, lat, lng)
    kit.engine.index.publish()


def run_for(kit: Kit, seconds: float) -> None:
    kit.clock.run_until(kit.clock.now() + seconds)


def offered_trips(kit: Kit, driver_id: str) -> list[str]:
    return [o.trip_id for o in kit.engine.pending_offers(driver_id)]


def test_without_hold_an_unmatched_trip_ends_at_its_window() -> None:
    kit = make_kit(policy="batched")
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    run_for(kit, 2.0)
    assert kit.engine.get_trip(trip.id).state == TripState.no_driver_found


def test_a_held_trip_waits_for_a_driver_who_comes_online() -> None:
    kit = make_kit(policy="batched", batch_hold_s=60.0)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    run_for(kit, 10.0)
    assert kit.engine.get_trip(trip.id).state == TripState.requested
    kit.driver("1", 200)
    run_for(kit, 2.0)
    assert offered_trips(kit, "1") == [trip.id]


def test_a_held_trip_ends_no_driver_found_when_its_hold_runs_out() -> None:
    kit = make_kit(policy="batched", batch_hold_s=10.0)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    run_for(kit, 8.0)
    assert kit.engine.get_trip(trip.id).state == TripState.requested
    run_for(kit, 4.0)
    assert kit.engine.get_trip(trip.id).state == TripState.no_driver_found
    assert kit.finished == [(trip.id, "no_driver_found")]


def test_the_eta_cap_keeps_a_new_trip_from_a_far_driver() -> None:
    kit = make_kit(policy="batched", batch_hold_s=120.0, batch_eta_cap_s=60.0)
    kit.driver("far", 1500)  # 244 s away
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    run_for(kit, 2.0)
    assert offered_trips(kit, "far") == []
    assert kit.engine.get_trip(trip.id).state == TripState.requested
    kit.driver("near", 100)
    run_for(kit, 2.0)
    assert offered_trips(kit, "near") == [trip.id] and offered_trips(kit, "far") == []


@pytest.mark.parametrize(("growth", "offered_by_106_s"), [(1.0, True), (0.0, False)])
def test_the_eta_cap_grows_with_waiting(growth: float, offered_by_106_s: bool) -> None:
    """A driver 162.5 s away, a cap of 60 s growing by `growth` s per s waited: with growth 1
    the cap reaches them after 102.5 s of waiting (the window at 104 s)."""
    kit = make_kit(policy="batched", batch_hold_s=300.0, batch_eta_cap_s=60.0,
                   batch_eta_cap_growth=growth)
    kit.driver("far", 1000)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    for _ in range(20):  # 100 s, the driver reporting every 5 s
        run_for(kit, 5.0)
        place(kit, "far", PICKUP[0] + 1000 * M, PICKUP[1])
    assert offered_trips(kit, "far") == []
    run_for(kit, 6.0)
    assert (offered_trips(kit, "far") == [trip.id]) is offered_by_106_s


def on_trip_near_its_dropoff(kit: Kit, driver_id: str, metres_left: float) -> str:
    """The driver takes a trip to DROPOFF and is now `metres_left` short of it."""
    kit.driver(driver_id, 100)
    trip = kit.engine.request_trip("60", PICKUP, DROPOFF)
    run_for(kit, 2.0)
    kit.engine.accept_offer(kit.pending_offer(driver_id), driver_id)
    kit.engine.arrive(trip.id, driver_id)
    kit.engine.start(trip.id, driver_id)
    place(kit, driver_id, DROPOFF[0] - metres_left * M, DROPOFF[1])
    assert kit.status(driver_id) == DriverStatus.on_trip
    return trip.id


@pytest.mark.parametrize(("forward_s", "waits_for_busy"), [(120.0, True), (30.0, False),
                                                           (0.0, False)])
def test_forward_dispatch_waits_for_a_driver_about_to_drop_off(forward_s: float,
                                                               waits_for_busy: bool) -> None:
    """The busy driver is 300 m (49 s) from their dropoff, which is 200 m (32.5 s) from the new
    pickup; the idle one is 2 km (325 s) away. Within batch_forward_s the new trip waits for
    the busy driver, who gets the offer only once free; beyond it, the idle one gets it."""
    kit = make_kit(policy="batched", batch_hold_s=120.0, batch_forward_s=forward_s)
    first = on_trip_near_its_dropoff(kit, "busy", 300)
    pickup = (DROPOFF[0] + 200 * M, DROPOFF[1])
    kit.driver("idle", 0)
    place(kit, "idle", pickup[0] + 2000 * M, pickup[1])
    trip = kit.engine.request_trip("51", pickup, DROPOFF)
    run_for(kit, 2.0)
    if not waits_for_busy:
        assert offered_trips(kit, "idle") == [trip.id]
        return
    assert offered_trips(kit, "idle") == [] and offered_trips(kit, "busy") == []
    assert kit.engine.get_trip(trip.id).state == TripState.requested
    run_for(kit, 10.0)  # still driving: still no second trip for them
    assert offered_trips(kit, "busy") == []
    place(kit, "busy", *DROPOFF)
    kit.engine.complete(first, "busy")
    kit.engine.index.publish()  # the next snapshot shows them available
    run_for(kit, 2.0)
    assert offered_trips(kit, "busy") == [trip.id] and offered_trips(kit, "idle") == []


def test_a_held_trip_its_rider_cancels_is_never_offered() -> None:
    kit = make_kit(policy="batched", batch_hold_s=60.0)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    run_for(kit, 4.0)
    kit.engine.cancel(trip.id, "rider", "50")
    kit.driver("1", 100)
    run_for(kit, 4.0)
    assert offered_trips(kit, "1") == []
    assert kit.engine.get_trip(trip.id).state == TripState.cancelled


def test_concurrent_requests_through_held_windows_are_each_offered_once() -> None:
    """Riders request at once from many threads, windows run on the timer thread and hold
    the trips no driver is free for; drivers who come online later take them. Every trip gets
    exactly one pending offer and no driver gets two."""
    clock = SystemClock()
    timers = ThreadTimers(clock)
    ids = itertools.count(1)
    offers: list[Offer] = []
    changed = threading.Condition()

    def offered(offer: Offer) -> None:
        with changed:
            offers.append(offer)
            changed.notify_all()

    index = GeoIndex(backend="quadtree", ttl_s=60.0, clock=clock.now)
    engine = Engine(memory_uow_factory(MemoryStore()), index, new_id=lambda: str(next(ids)),
                    clock=clock, timers=timers, tariff=NYC_YELLOW_2016,
                    config=DispatchConfig(policy="batched", batch_window_s=0.05,
                                          batch_hold_s=60.0), hooks=Hooks(offer_made=offered))

    def online(first: int, n: int) -> None:
        for d in range(first, first + n):
            engine.go_online(f"d{d}", "standard")
            engine.update_location(f"d{d}", PICKUP[0] + d * 50 * M, PICKUP[1])
        index.publish()

    def wait_for(count: int) -> None:
        with changed:
            assert changed.wait_for(lambda: len(offers) >= count, timeout=60), len(offers)

    online(0, 8)
    timers.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            trips = list(pool.map(lambda r: engine.request_trip(f"r{r}", PICKUP, DROPOFF),
                                  range(16)))
        wait_for(8)
        online(8, 8)
        wait_for(16)
    finally:
        timers.stop()
    assert len(offers) == 16
    assert sorted(o.trip_id for o in offers) == sorted(t.id for t in trips)
    assert len({o.driver_id for o in offers}) == 16
    for d in range(16):
        assert len(engine.pending_offers(f"d{d}")) == 1
