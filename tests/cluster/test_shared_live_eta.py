"""The live travel-time correction is shared in the scaled mode: a ride one process completes
teaches every process's correction, and a driver's or rider's share of rides is counted across
processes, not once per process (dispatch/cluster.py:RedisRideEvents, on real Redis)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from dispatch.cluster import RIDES_STREAM, RedisRideEvents
from dispatch.eta import StraightLineEta
from dispatch.feed import StreamTailer, redis_client
from dispatch.live_eta import LiveCorrection, LiveEta
from ridehail.bootstrap import build_engine
from ridehail.scaled import scaled_parts, start_scaled
from ridehail.settings import Settings
from ridehail.units import memory_uow_factory
from tests.cluster.conftest import wait_until
from tests.conftest import NEEDS_REDIS, REDIS_URL
from tests.dispatch.test_engine_rules import DROPOFF, PICKUP

pytestmark = NEEDS_REDIS

Apply = Callable[[float, float, float, tuple[str, ...]], None]


def counting(correction: LiveCorrection, want: int) -> tuple[Apply, threading.Event]:
    """`correction.observe`, setting the event once `want` rides arrived."""
    got = threading.Event()
    seen = [0]

    def apply(predicted: float, actual: float, at: float, parties: tuple[str, ...]) -> None:
        correction.observe(predicted, actual, at, parties)
        seen[0] += 1
        if seen[0] >= want:
            got.set()
    return apply, got


def process(redis: Any, name: str, origin: str, want: int
            ) -> tuple[LiveEta, StreamTailer, threading.Event]:
    """One API process's correction: announcing its rides, tailing the others'."""
    events = RedisRideEvents(redis, origin, stream=name)
    live = LiveEta(StraightLineEta(), LiveCorrection(prior_rides=20, per_party_rides=3),
                   announce=events.announce)
    apply, got = counting(live.correction, want)
    return live, StreamTailer(redis, name, events.handler(apply), name=f"rides-{origin}"), got


def test_a_ride_completed_by_one_process_teaches_the_others(stream: tuple[Any, str]) -> None:
    redis, name = stream
    a, tail_a, got_a = process(redis, name, "a", 1)
    b, tail_b, got_b = process(redis, name, "b", 4)
    seconds, _m = StraightLineEta().travel(*PICKUP, *DROPOFF, 0.0)
    for t in (tail_a, tail_b):
        t.start()
    try:
        for i in range(4):  # four slow rides on a, each by its own pair
            a.observe_ride(PICKUP, DROPOFF, 100.0 * i, 100.0 * i + seconds * 1.5,
                           (f"driver:{i}", f"rider:{i}"))
        b.observe_ride(PICKUP, DROPOFF, 500.0, 500.0 + seconds, ("driver:9", "rider:9"))
        assert got_b.wait(10), "process b never learned a's rides"
        assert got_a.wait(10), "process a never learned b's ride"
        # Both learned the same five rides (a its own four at once, b's one from the stream).
        assert a.correction.rides == b.correction.rides == 5
        assert a.correction.factor(600.0) == pytest.approx(b.correction.factor(600.0))
        assert a.correction.factor(600.0) > 1.05
    finally:
        for t in (tail_a, tail_b):
            t.stop()


def test_a_drivers_share_is_counted_across_processes(stream: tuple[Any, str]) -> None:
    redis, name = stream
    a, tail_a, _ = process(redis, name, "a", 10**9)
    b, tail_b, got_b = process(redis, name, "b", 3)
    seconds, _m = StraightLineEta().travel(*PICKUP, *DROPOFF, 0.0)
    for t in (tail_a, tail_b):
        t.start()
    try:
        for i in range(3):  # mallory's three rides, completed on a
            a.observe_ride(PICKUP, DROPOFF, float(i), float(i) + seconds * 2,
                           ("driver:mallory", f"rider:{i}"))
        assert got_b.wait(10), "process b never learned a's rides"
        before = b.correction.factor(10.0)
        # A fourth ride of hers, completed on b, counts for nothing there either.
        b.observe_ride(PICKUP, DROPOFF, 5.0, 5.0 + seconds * 2, ("driver:mallory", "rider:x"))
        # (Unshared, b would count it in full: 2x over a prior of 20 moves the factor 3%.)
        assert b.correction.factor(10.0) == pytest.approx(before, rel=1e-3)
        assert b.correction.used("driver:mallory", 10.0) == pytest.approx(3.0, rel=1e-3)
    finally:
        for t in (tail_a, tail_b):
            t.stop()


def test_a_process_that_starts_late_reads_the_recent_rides(stream: tuple[Any, str]) -> None:
    redis, name = stream
    early = RedisRideEvents(redis, "early", stream=name)
    for i in range(3):
        early.announce(100.0, 150.0, float(i), (f"driver:{i}", f"rider:{i}"))
    late = LiveCorrection(prior_rides=0)
    apply, got = counting(late, 3)
    tailer = StreamTailer(redis, name, RedisRideEvents(redis, "late", stream=name).handler(
        apply), name="rides-late", since=0.0)
    tailer.start()
    try:
        assert got.wait(10), "the late process did not read the recent rides"
        assert late.factor(2.0) == pytest.approx(1.5)
    finally:
        tailer.stop()


def test_a_malformed_ride_entry_is_refused() -> None:
    learned: list[Any] = []
    handle = RedisRideEvents(None, "b").handler(lambda *ride: learned.append(ride))
    entry = {b"o": b"a", b"p": b"100.0", b"a": b"150.0", b"t": b"1.0", b"w": b'["driver:1"]'}
    handle(entry)
    assert learned == [(100.0, 150.0, 1.0, ("driver:1",))]
    for bad in ({**entry, b"w": b'"driver:1"'}, {**entry, b"w": b"[1, 2]"},
                {**entry, b"p": b"fast"}):
        with pytest.raises(ValueError):
            handle(bad)
    assert len(learned) == 1
    handle({**entry, b"o": b"b"})  # its own ride: learned before it was announced
    assert len(learned) == 1


def test_the_scaled_engine_announces_its_rides_and_learns_the_others() -> None:
    settings = Settings.from_env({"RIDEHAIL_REDIS_URL": REDIS_URL})
    engine, _, _ = build_engine(settings, memory_uow_factory(), start=False)
    assert isinstance(engine.eta, LiveEta) and engine.eta.announce is not None
    assert engine.eta.announce.__self__.stream == RIDES_STREAM  # type: ignore[attr-defined]
    redis = redis_client(REDIS_URL)
    parts = scaled_parts(settings)
    running = start_scaled(parts, engine)
    try:
        other = RedisRideEvents(redis, f"other-{uuid.uuid4().hex}")
        marker = f"driver:{uuid.uuid4().hex}"
        other.announce(100.0, 150.0, time.time(), (marker,))
        wait_until(lambda: engine.eta.correction.used(marker, time.time()) > 0.99, 10,
                   "the engine learned another process's ride")
    finally:
        running.stop()
