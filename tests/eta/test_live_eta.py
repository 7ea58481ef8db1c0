"""The live travel-time correction (dispatch/live_eta.py): what moves it, how far, how it fades,
that it holds under concurrent rides, that the API's engine learns from completed rides, and
that the meter judges a trip against the route its quote was priced on, not a later answer."""

from __future__ import annotations

import math
import sys
import threading

import pytest

from dispatch.eta import StraightLineEta
from dispatch.live_eta import LiveCorrection, LiveEta
from ridehail.bootstrap import build_engine
from ridehail.settings import Settings, SettingsError
from ridehail.units import memory_uow_factory
from tests.dispatch.test_engine_rules import DROPOFF, PICKUP, make_kit

HOUR = 3600.0


def test_slower_rides_raise_the_factor_toward_what_they_took() -> None:
    c = LiveCorrection(half_life_s=6 * HOUR, prior_rides=20)
    assert c.factor(0.0) == 1.0
    for i in range(200):
        c.observe(600.0, 720.0, float(i))  # every ride 1.2x the model
    assert 1.17 < c.factor(200.0) < 1.2  # shrunk a little toward 1 by the prior
    few = LiveCorrection(half_life_s=6 * HOUR, prior_rides=20)
    few.observe(600.0, 720.0, 0.0)
    assert 1.0 < few.factor(0.0) < 1.01  # one ride moves it little


def test_a_ride_counts_at_most_twice_and_the_factor_is_bounded() -> None:
    one = LiveCorrection(prior_rides=0, max_factor=10.0)
    one.observe(100.0, 1000.0, 0.0)  # a driver who reports a ride 10x as long
    assert one.factor(0.0) == pytest.approx(2.0)
    many = LiveCorrection(prior_rides=0, max_factor=1.5)
    for i in range(100):
        many.observe(100.0, 1000.0, float(i))
    assert many.factor(100.0) == pytest.approx(1.5)
    for bad in ((0.0, 100.0), (100.0, -1.0), (math.nan, 100.0), (100.0, math.inf)):
        many.observe(*bad, 101.0)
    assert many.rides == 100


def test_an_old_correction_fades_back_to_the_model() -> None:
    c = LiveCorrection(half_life_s=HOUR, prior_rides=20)
    for i in range(100):
        c.observe(100.0, 130.0, float(i))
    fresh = c.factor(100.0)
    assert fresh > 1.2
    assert math.log(c.factor(100.0 + 6 * HOUR)) < math.log(fresh) / 5
    # A ride reported late counts at its own age, after the newer ones.
    c.observe(100.0, 50.0, 50.0)
    assert c.factor(100.0) < fresh


def test_concurrent_rides_are_all_counted() -> None:
    c = LiveCorrection(prior_rides=0)
    n, per = 8, 10_000
    start = threading.Barrier(n)

    def ride(k: int) -> None:
        start.wait()
        for i in range(per):
            c.observe(100.0, 150.0 if k % 2 else 100.0 / 1.5, 1000.0 + i)

    threads = [threading.Thread(target=ride, args=(k,)) for k in range(n)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch as often as can be, so unlocked updates interleave
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert c.rides == n * per
    # Half the rides 1.5x, half 1/1.5x, at the same times: the mean log ratio is 0. A lost
    # update (a read-modify-write of the sums without the lock) would leave it off 0.
    assert c.factor(1000.0 + per) == pytest.approx(1.0, abs=1e-9)


def test_a_ride_the_fit_would_refuse_teaches_nothing() -> None:
    live = LiveEta(StraightLineEta(), LiveCorrection(prior_rides=0))
    live.observe_ride(PICKUP, DROPOFF, 0.0, 10.0)  # 5 km in 10 s: implausible
    live.observe_ride(PICKUP, PICKUP, 0.0, 600.0)  # no distance
    assert live.correction.rides == 0
    seconds, metres = StraightLineEta().travel(*PICKUP, *DROPOFF, 0.0)
    live.observe_ride(PICKUP, DROPOFF, 0.0, seconds * 1.25)
    assert live.correction.rides == 1
    s, m = live.travel(*PICKUP, *DROPOFF, seconds * 1.25)
    assert s == pytest.approx(seconds * 1.25) and m == metres  # metres never corrected
    (eta,) = live.pickup_etas([DROPOFF[0]], [DROPOFF[1]], *PICKUP, seconds * 1.25)
    assert eta == pytest.approx(seconds * 1.25, rel=1e-6)


def test_the_api_engine_learns_from_completed_rides_and_the_setting_turns_it_off() -> None:
    engine, _, _ = build_engine(Settings.from_env({}), memory_uow_factory(), start=False)
    assert isinstance(engine.eta, LiveEta) and engine.matcher.eta is engine.eta
    assert engine.eta.correction.rate == pytest.approx(math.log(2) / (8 * HOUR))
    off = Settings.from_env({"RIDEHAIL_ETA_LIVE_HALF_LIFE_S": "0"})
    engine, _, _ = build_engine(off, memory_uow_factory(), start=False)
    assert not isinstance(engine.eta, LiveEta)
    for bad in ("-1", "nan", "1e9"):
        with pytest.raises(SettingsError, match="RIDEHAIL_ETA_LIVE_HALF_LIFE_S"):
            Settings.from_env({"RIDEHAIL_ETA_LIVE_HALF_LIFE_S": bad})


def _ride(kit, trip_id: str, seconds: float) -> None:  # noqa: ANN001
    offer, = kit.engine.pending_offers("1")
    kit.engine.accept_offer(offer.id, "1")
    kit.engine.arrive(trip_id, "1")
    kit.engine.start(trip_id, "1")
    kit.clock._now += seconds
    kit.engine.update_location("1", *DROPOFF, kit.clock.now())


def test_a_completed_ride_teaches_the_engine_and_the_meter_keeps_the_quoted_route() -> None:
    live = LiveEta(StraightLineEta(), LiveCorrection(prior_rides=0, max_factor=2.0))
    kit = make_kit(eta=live)
    kit.driver("1", 400)
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    quoted = kit.engine.matcher.route(PICKUP, DROPOFF, trip.requested_at)
    assert trip.quoted_route() == pytest.approx(quoted)
    seconds = quoted[0]
    _ride(kit, trip.id, seconds * 2.3)  # the ride took 2.3x what was quoted
    # Meanwhile other rides taught the model that everything is 2x slower: asked again, it
    # would put the ride at 2x, by which 2.3x is within the 25% margin; the meter must judge
    # it by its quote, by which it was 130% longer, and so meter it.
    for _ in range(50):
        live.correction.observe(100.0, 200.0, kit.clock.now())
    assert kit.engine.matcher.route(PICKUP, DROPOFF, trip.requested_at)[0] > seconds * 1.95
    done = kit.engine.complete(trip.id, "1")
    assert done.fare_rule == "metered_longer"
    assert live.correction.rides == 51  # the ride itself taught it too
    # ... charged to its driver's and its rider's shares (one ride each)
    now = kit.clock.now()
    assert live.correction.used("driver:1", now) == pytest.approx(1.0)
    assert live.correction.used("rider:50", now) == pytest.approx(1.0)


def test_one_driver_or_one_rider_counts_for_at_most_its_share_of_rides() -> None:
    c = LiveCorrection(half_life_s=6 * HOUR, prior_rides=20, per_party_rides=3)
    for i in range(100):  # one driver fakes 100 rides at the 2x clip, each with a new rider
        c.observe(100.0, 1000.0, float(i), ("driver:mallory", f"rider:{i}"))
    # As 3 rides: exp(3 ln2 / 23) = 1.095; without the cap, 100 rides reach the 1.5 bound.
    assert c.factor(100.0) == pytest.approx(math.exp(3 * math.log(2) / 23), rel=2e-3)
    assert c.used("driver:mallory", 100.0) == pytest.approx(3.0, rel=1e-3)
    for i in range(100):  # one rider with 100 drivers: the same
        c.observe(100.0, 1000.0, 100.0 + i, (f"driver:{i}", "rider:mallory"))
    assert c.factor(200.0) == pytest.approx(math.exp(6 * math.log(2) / 26), rel=2e-3)
    before = c.factor(200.0)
    c.observe(100.0, 1000.0, 200.0, ("driver:alice", "rider:bob"))  # other parties still count
    assert c.factor(200.0) > before
    # As a party's rides fade, it may count again (a share, not a lifetime quota).
    later = 200.0 + 6 * HOUR
    assert c.used("driver:mallory", later) == pytest.approx(1.5, rel=1e-2)
    c.observe(100.0, 1000.0, later, ("driver:mallory", "rider:zed"))
    assert c.used("driver:mallory", later) == pytest.approx(2.5, rel=1e-2)


def test_the_parties_table_forgets_faded_parties() -> None:
    c = LiveCorrection(half_life_s=60.0, prior_rides=0)
    for i in range(20_000):  # a new driver and rider every 10 minutes: each faded long before
        c.observe(100.0, 100.0, 600.0 * i, (f"driver:{i}", f"rider:{i}"))
    assert c.rides == 20_000
    assert len(c._parties) <= 2048


def test_concurrent_rides_of_one_party_never_exceed_its_share() -> None:
    n, per, rounds = 8, 1_500, 6  # a lost race shows in about half the rounds: six of them

    def ride(c: LiveCorrection, start: threading.Barrier, k: int) -> None:
        start.wait()
        for i in range(per):
            c.observe(100.0, 150.0, 1000.0, ("driver:shared", f"rider:{k}:{i}"))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(rounds):
            c = LiveCorrection(prior_rides=0, per_party_rides=3)
            start = threading.Barrier(n)
            threads = [threading.Thread(target=ride, args=(c, start, k)) for k in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            # Check-then-charge of the share outside one lock would let more than 3 rides in.
            assert c.rides == 3 and c.capped == n * per - 3
            assert c.used("driver:shared", 1000.0) == pytest.approx(3.0)
    finally:
        sys.setswitchinterval(old)
