"""Issue 13, items 3 and 15, on the in-memory unit of work with a simulated clock: the meter
the driver cannot inflate (back-dated or stale points refused, a city speed cap, the upfront
fare rule), cancellation and no-show fees through the exactly-once payment path, and the
pickup PIN. Each test names the guard it holds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np
import pytest

from dispatch.engine import DispatchConfig, Engine
from dispatch.locations import BadLocation
from dispatch.model import DriverStatus
from geoindex import GeoIndex
from ridehail.kernel.units import MemoryStore
from ridehail.units import memory_uow_factory
from simulator.clock import SimClock
from trips.billing import BillingPolicy, charge_trip, set_payment_method
from trips.fares import NYC_YELLOW_2016
from trips.fees import CancellationPolicy, NoShowTooEarly, PinLocked, WrongPin
from trips.model import Trip, TripState
from trips.pricing import UpfrontPolicy, meter, metered_trace, quote
from trips.sandbox import SandboxProvider

PICKUP = (40.7580, -73.9855)  # Times Square
M = 1 / 111_320  # about a metre of latitude
T0 = 1_700_000_000.0
TTL = 60.0
FEES = CancellationPolicy(fee=500, fee_after_s=120.0, no_show_wait_s=300.0)


@dataclass
class Kit:
    engine: Engine
    clock: SimClock
    store: MemoryStore
    charged: list[str] = field(default_factory=list)

    def units(self, readonly: bool = False):  # noqa: ANN201 - the wiring's factory
        return memory_uow_factory(self.store)(readonly)

    def trip(self, trip_id: str) -> Trip:
        with self.units(readonly=True) as uow:
            found = uow.trips.get(trip_id)
        assert found is not None
        return found

    def assigned(self, dropoff: tuple[float, float]) -> Trip:
        """Driver "1" online at the pickup and assigned rider "50"'s trip to `dropoff`."""
        self.engine.go_online("1", "standard")
        self.engine.update_location("1", *PICKUP)
        self.engine.index.publish()
        trip = self.engine.request_trip("50", PICKUP, dropoff)
        [offer] = self.engine.pending_offers("1")
        self.engine.accept_offer(offer.id, "1")
        return trip


def make_kit(fees: CancellationPolicy = FEES) -> Kit:
    clock = SimClock(start=T0)
    store = MemoryStore()
    ids = itertools.count(1000)
    charged: list[str] = []
    engine = Engine(memory_uow_factory(store), GeoIndex(backend="quadtree", ttl_s=TTL,
                                                        clock=clock.now),
                    new_id=lambda: str(next(ids)), clock=clock, timers=clock,
                    tariff=NYC_YELLOW_2016, config=DispatchConfig(offer_timeout_s=15.0),
                    cancellation=fees, charge=charged.append)
    return Kit(engine, clock, store, charged)


@pytest.fixture
def kit() -> Kit:
    return make_kit()


# --- item 3: the meter -----------------------------------------------------------------------

def test_a_location_older_than_the_last_accepted_one_is_refused(kit: Kit) -> None:
    kit.engine.go_online("1", "standard")
    now = kit.clock.now()
    kit.engine.update_location("1", *PICKUP, ts=now)
    with pytest.raises(BadLocation) as info:
        kit.engine.update_location("1", PICKUP[0] + 69 * M, PICKUP[1], ts=now - 5)
    assert info.value.field == "ts" and "last accepted" in info.value.message
    # The same rule for a gateway's batch: the older row is refused, the newer one taken.
    accepted, rejected = kit.engine.update_locations(
        [("1", PICKUP[0], PICKUP[1], now - 1), ("1", PICKUP[0], PICKUP[1], now + 1)])
    assert accepted == 1
    assert rejected == [{"index": 0, "driver_id": "1", "field": "ts",
                         "reason": "older than this driver's last accepted location"}]
    # A point the server stamps ("now") is never refused, even after a fast device clock.
    kit.engine.update_location("1", *PICKUP, ts=now + 30)
    kit.engine.update_location("1", *PICKUP)


def test_a_location_older_than_the_ttl_is_refused(kit: Kit) -> None:
    kit.engine.go_online("1", "standard")
    with pytest.raises(BadLocation) as info:
        kit.engine.update_location("1", *PICKUP, ts=kit.clock.now() - TTL - 1)
    assert info.value.field == "ts" and "TTL" in info.value.message
    _, rejected = kit.engine.update_locations([("1", *PICKUP, kit.clock.now() - TTL - 1)])
    assert rejected[0]["field"] == "ts"


def test_a_batch_as_columns_gets_the_rules_of_the_same_batch_as_rows() -> None:
    """The simulator's tick sends columns: every refusal of the rows path, in the same order,
    and the same drivers in the index."""
    kits = make_kit(), make_kit()
    for k in kits:
        for d in ("1", "2", "3"):
            k.engine.go_online(d, "standard")
        k.engine.update_location("3", *PICKUP, ts=k.clock.now())
    now = kits[0].clock.now()
    rows = [("1", PICKUP[0], PICKUP[1], None), ("9", *PICKUP, now),
            ("2", *PICKUP, now - TTL - 1), ("3", PICKUP[0] + M, PICKUP[1], now - 1),
            ("2", PICKUP[0], 200.0, now)]
    by_rows = kits[0].engine.update_locations(rows)
    ids, lats, lngs, tss = (list(c) for c in zip(*rows, strict=True))
    by_columns = kits[1].engine.update_location_columns(ids, np.array(lats), np.array(lngs),
                                                        tss)
    assert by_columns == by_rows
    assert by_rows[0] == 1 and [r["index"] for r in by_rows[1]] == [1, 2, 3, 4]
    assert [r.get("field") for r in by_rows[1]] == [None, "ts", "ts", "lng"]
    snaps = [k.engine.index.publish() for k in kits]
    assert [s.total for s in snaps] == [2, 2]


def test_a_tick_as_columns_at_one_time_feeds_the_meter_of_a_driver_on_a_trip(kit: Kit) -> None:
    dropoff = (PICKUP[0] + 2000 * M, PICKUP[1])
    trip = kit.assigned(dropoff)
    kit.engine.go_online("2", "standard")
    kit.engine.arrive(trip.id, "1")
    kit.engine.start(trip.id, "1")
    kit.clock._now += 60.0
    now = kit.clock.now()
    accepted, rejected = kit.engine.update_location_columns(
        ["1", "2"], np.array([PICKUP[0] + 900 * M, PICKUP[0]]), np.array([PICKUP[1]] * 2), now)
    assert (accepted, rejected) == (2, [])
    assert kit.engine.drivers.traces.points(trip.id).tolist() == [[now, PICKUP[0] + 900 * M,
                                                                 PICKUP[1]]]


def test_the_zig_zag_back_dated_attack_is_refused_and_billed_at_the_quote(kit: Kit) -> None:
    # The attack of the issue: a 100 m trip, then back-dated points 69 m apart.
    dropoff = (PICKUP[0] + 100 * M, PICKUP[1])
    trip = kit.assigned(dropoff)
    kit.engine.arrive(trip.id, "1")
    kit.engine.start(trip.id, "1")
    kit.clock._now += 20.0  # a 100 m ride, quicker than the quote's duration
    kit.engine.update_location("1", *dropoff)  # at the dropoff, stamped now
    refused = 0
    for i in range(1, 20):
        try:
            kit.engine.update_location("1", PICKUP[0] + (69 * (i % 2)) * M, PICKUP[1],
                                       ts=trip.requested_at + i)
        except BadLocation:
            refused += 1
    assert refused == 19
    done = kit.engine.complete(trip.id, "1")
    assert done.fare_final == done.fare_estimate and done.fare_rule == "quote"


def test_the_speed_cap_and_the_quote_hold_against_a_forged_trace() -> None:
    # The same zig-zag, had it been accepted (in order, 1 s apart, in a 20 s ride): 69 m/s is
    # no city speed, so it carries no distance, and the rider pays the quote.
    trip = _trip(dropoff_m=100)
    zigzag = [(T0 + i, PICKUP[0] + (69 * (i % 2)) * M, PICKUP[1]) for i in range(1, 20)]
    fare = meter(NYC_YELLOW_2016, trip, zigzag, T0 + 20)
    assert fare.metered.distance_m < 100
    assert (fare.total, fare.rule) == (trip.fare_estimate, "quote")


def test_the_meter_drops_a_point_older_than_the_one_before() -> None:
    trip = _trip(dropoff_m=100)
    trace = metered_trace(trip, [(T0 + 50, *PICKUP), (T0 + 10, 0.0, 0.0)], T0 + 60)
    assert [p[0] for p in trace] == [T0, T0 + 50, T0 + 60]


def _trip(dropoff_m: float) -> Trip:
    dropoff = (PICKUP[0] + dropoff_m * M, PICKUP[1])
    q = quote(NYC_YELLOW_2016, PICKUP, dropoff, Decimal(1))
    return Trip("t", "50", "standard", *PICKUP, *dropoff, requested_at=T0 - 300,
                state=TripState.in_progress, driver_id="1", started_at=T0,
                fare_estimate=q.total)


def _drive(metres: float, speed: float = 8.0) -> list[tuple[float, float, float]]:
    """Due north from the pickup at `speed`, a point every 10 s."""
    steps = int(metres / (speed * 10)) + 1
    return [(T0 + 10 * i, PICKUP[0] + min(metres, speed * 10 * i) * M, PICKUP[1])
            for i in range(1, steps + 1)]


def test_a_genuinely_longer_route_pays_the_meter_up_to_the_cap() -> None:
    trip = _trip(dropoff_m=1000)
    q = trip.fare_estimate
    assert q is not None
    policy = UpfrontPolicy(tolerance=Decimal("0.10"), margin=Decimal("0.25"),
                           cap=Decimal("0.50"))
    # A little longer (within the margins): the quote holds.
    near = meter(NYC_YELLOW_2016, trip, _drive(1250), _drive(1250)[-1][0], policy)
    assert (near.total, near.rule) == (q, "quote")
    # Materially longer (3 km for 1.27 km quoted): the meter, below the cap.
    longer = _drive(3000)
    fare = meter(NYC_YELLOW_2016, trip, longer, longer[-1][0], policy)
    assert fare.rule == "metered_longer"
    assert q < fare.total == fare.metered.total <= q * 3 // 2
    # Far longer: the meter, capped at the quote x 1.5.
    far = _drive(6000)
    fare = meter(NYC_YELLOW_2016, trip, far, far[-1][0], policy)
    assert fare.metered.total > q * 3 // 2
    assert (fare.total, fare.rule) == ((q * 3 + 1) // 2, "metered_capped")


def test_a_ride_ended_materially_short_pays_the_meter() -> None:
    trip = _trip(dropoff_m=3000)
    short = _drive(500)
    fare = meter(NYC_YELLOW_2016, trip, short, short[-1][0])
    assert fare.rule == "metered_shorter" and fare.total == fare.metered.total
    assert trip.fare_estimate is not None and fare.total < trip.fare_estimate


# --- item 15: cancellation and no-show fees, the pickup PIN ---------------------------------

def _charge(kit: Kit, trip_id: str) -> dict[str, int]:
    units = memory_uow_factory(kit.store)
    set_payment_method(units, "50", "tok_ok", kit.clock.now())
    out = charge_trip(units, SandboxProvider(units), trip_id, BillingPolicy(2500))
    assert out.state == "captured", out
    assert charge_trip(units, SandboxProvider(units), trip_id, BillingPolicy(2500)).state \
        == "captured"  # a redelivery charges nothing more
    with units(readonly=True) as uow:
        return {e.kind: e.amount for e in uow.ledger.for_trip(trip_id)}


def test_a_rider_who_cancels_soon_after_assignment_pays_nothing(kit: Kit) -> None:
    trip = kit.assigned((PICKUP[0] + 1000 * M, PICKUP[1]))
    kit.clock._now += FEES.fee_after_s
    done = kit.engine.cancel(trip.id, "rider", "50")
    assert done.fare_final is None and done.payment_state is None and kit.charged == []


def test_a_rider_who_cancels_late_pays_the_driver_through_the_ledger(kit: Kit) -> None:
    trip = kit.assigned((PICKUP[0] + 1000 * M, PICKUP[1]))
    kit.clock._now += FEES.fee_after_s + 1
    done = kit.engine.cancel(trip.id, "rider", "50")
    assert done.state == TripState.cancelled
    assert (done.fare_final, done.fare_rule, done.payment_state) == (500, "cancel_fee",
                                                                     "pending")
    assert kit.charged == [trip.id]
    lines = _charge(kit, trip.id)
    assert lines == {"rider_charge": -500, "driver_payout": 375, "platform_fee": 125}


def test_a_no_show_needs_the_wait_then_the_rider_pays(kit: Kit) -> None:
    trip = kit.assigned((PICKUP[0] + 1000 * M, PICKUP[1]))
    with pytest.raises(NoShowTooEarly):
        kit.engine.no_show(trip.id, "1")  # not at the pickup yet
    kit.engine.arrive(trip.id, "1")
    kit.clock._now += FEES.no_show_wait_s - 1
    with pytest.raises(NoShowTooEarly):
        kit.engine.no_show(trip.id, "1")
    kit.clock._now += 1
    done = kit.engine.no_show(trip.id, "1")
    assert (done.state, done.cancelled_by, done.cancel_reason) == (TripState.cancelled,
                                                                   "driver", "no_show")
    assert (done.fare_final, done.fare_rule) == (500, "no_show_fee")
    assert kit.engine.driver_entry("1").status == DriverStatus.available  # type: ignore[union-attr]
    assert _charge(kit, trip.id)["driver_payout"] == 375


def test_the_pickup_pin_is_needed_to_start_with_limited_tries() -> None:
    kit = make_kit(replace(FEES, pickup_pin=True, pin_attempts=3))
    trip = kit.assigned((PICKUP[0] + 1000 * M, PICKUP[1]))
    kit.engine.arrive(trip.id, "1")
    pin = kit.trip(trip.id).pickup_pin
    assert pin is not None and len(pin) == 4
    wrong = f"{(int(pin) + 1) % 10_000:04d}"
    with pytest.raises(WrongPin):
        kit.engine.start(trip.id, "1")
    with pytest.raises(WrongPin):
        kit.engine.start(trip.id, "1", wrong)
    assert kit.trip(trip.id).pin_attempts == 2  # each wrong try is saved
    assert kit.engine.start(trip.id, "1", pin).state == TripState.in_progress

    other = make_kit(replace(FEES, pickup_pin=True, pin_attempts=3))
    trip = other.assigned((PICKUP[0] + 1000 * M, PICKUP[1]))
    other.engine.arrive(trip.id, "1")
    pin = other.trip(trip.id).pickup_pin
    assert pin is not None
    for _ in range(3):
        with pytest.raises(WrongPin):
            other.engine.start(trip.id, "1", f"{(int(pin) + 1) % 10_000:04d}")
    with pytest.raises(PinLocked):
        other.engine.start(trip.id, "1", pin)  # even the right one, after too many
    assert other.trip(trip.id).state == TripState.driver_arrived
