"""After a ride step commits, its announcements (the driver's status, the trip's wake-up, the
completed ride for the travel-time correction) go out in one batch: one Redis round trip per
step in the scaled mode (dispatch/cluster.py:BatchedRedis), here a recording stand-in."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

from dispatch.engine import DispatchConfig, Engine, Hooks
from dispatch.eta import StraightLineEta
from dispatch.live_eta import LiveCorrection, LiveEta
from geoindex import GeoIndex
from ridehail.kernel.channel import Channel
from ridehail.units import memory_uow_factory
from simulator.clock import SimClock
from tests.dispatch.test_engine_rules import DROPOFF, PICKUP
from trips.fares import NYC_YELLOW_2016


class Batches:
    """An `Announcing`: counts the batches, and whether a send happens inside one."""

    def __init__(self) -> None:
        self.depth = 0
        self.outside: list[str] = []

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def send(self, what: str) -> None:
        if not self.depth:
            self.outside.append(what)


class Events:
    def __init__(self, batches: Batches) -> None:
        self.batches = batches

    def announce(self, driver_id: str, status: str, vehicle_class: str | None,
                 trip_id: str | None, version: int) -> None:
        self.batches.send(f"driver {status}")


class TripChannel(Channel):
    def __init__(self, batches: Batches) -> None:
        super().__init__("trips")
        self.batches = batches

    def publish(self, key: str, message: dict[str, object]) -> int:
        self.batches.send(f"trip {message.get('state')}")
        return super().publish(key, message)


def test_each_ride_step_announces_in_one_batch() -> None:
    batches = Batches()
    clock = SimClock(start=1_700_000_000.0)
    ids = itertools.count(1000)
    live = LiveEta(StraightLineEta(), LiveCorrection(),
                   announce=lambda *ride: batches.send("ride"))
    engine = Engine(memory_uow_factory(), GeoIndex(backend="quadtree", clock=clock.now),
                    new_id=lambda: str(next(ids)), clock=clock, timers=clock,
                    tariff=NYC_YELLOW_2016, config=DispatchConfig(offer_timeout_s=15.0),
                    hooks=Hooks(), eta=live, events=Events(batches),  # type: ignore[arg-type]
                    trip_channel=TripChannel(batches), announcing=batches)
    engine.go_online("1", "standard")
    engine.update_location("1", *PICKUP)
    engine.index.publish()
    batches.outside.clear()  # going online and moving are not what this test is about
    trip = engine.request_trip("50", PICKUP, DROPOFF)
    (offer,) = engine.pending_offers("1")
    engine.accept_offer(offer.id, "1")
    engine.arrive(trip.id, "1")
    engine.start(trip.id, "1")
    clock._now += 600
    engine.update_location("1", *DROPOFF, clock.now())
    engine.complete(trip.id, "1")
    assert live.correction.rides == 1  # the ride was announced (inside its batch)
    assert batches.outside == []
