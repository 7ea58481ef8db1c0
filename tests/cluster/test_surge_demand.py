"""Surge demand is shared in the scaled mode: a request one process takes counts in every
process's surge pricer (dispatch/cluster.py:RedisDemandEvents, on real Redis)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dispatch.cluster import RedisDemandEvents
from dispatch.feed import StreamTailer
from tests.conftest import NEEDS_REDIS
from trips.surge import SurgePricer

pytestmark = NEEDS_REDIS

TIMES_SQUARE = (40.7580, -73.9855)


def counting(pricer: SurgePricer, want: int) -> tuple[Callable[[float, float, float], None],
                                                      threading.Event]:
    """`pricer.record_request`, setting the event once `want` requests arrived."""
    got = threading.Event()
    seen = [0]

    def apply(lat: float, lng: float, ts: float) -> None:
        pricer.record_request(lat, lng, ts)
        seen[0] += 1
        if seen[0] >= want:
            got.set()
    return apply, got


def test_a_request_taken_by_one_process_counts_in_the_others(
        stream: tuple[Any, str]) -> None:
    redis, name = stream
    a, b = (RedisDemandEvents(redis, origin, stream=name) for origin in ("a", "b"))
    pricer_a, pricer_b = SurgePricer(clock=time.time), SurgePricer(clock=time.time)
    apply_b, got_b = counting(pricer_b, 3)
    apply_a, got_a = counting(pricer_a, 1)
    tailers = [StreamTailer(redis, name, b.handler(apply_b), name="demand-b"),
               StreamTailer(redis, name, a.handler(apply_a), name="demand-a")]
    for t in tailers:
        t.start()
    try:
        now = time.time()
        for _ in range(3):
            pricer_a.record_request(*TIMES_SQUARE, now)  # what Supply does locally...
            a.announce(*TIMES_SQUARE, now)  # ...and announces
        b.announce(40.70, -74.01, now)
        assert got_b.wait(10), "process b never saw a's requests"
        assert got_a.wait(10), "process a never saw b's request"
        cell = pricer_b.cell(*TIMES_SQUARE)
        assert pricer_b.demand(cell) == 3
        # a counted its own three once (its own announcements are skipped) and b's one.
        assert pricer_a.demand(cell) == 3
        assert pricer_a.demand(pricer_a.cell(40.70, -74.01)) == 1
    finally:
        for t in tailers:
            t.stop()


def test_a_process_that_starts_late_reads_the_windows_demand(stream: tuple[Any, str]) -> None:
    redis, name = stream
    a = RedisDemandEvents(redis, "a", stream=name)
    now = time.time()
    a.announce(*TIMES_SQUARE, now)
    a.announce(*TIMES_SQUARE, now)
    late = RedisDemandEvents(redis, "late", stream=name)
    pricer = SurgePricer(clock=time.time, window_s=300)
    apply, got = counting(pricer, 2)
    tailer = StreamTailer(redis, name, late.handler(apply), name="demand-late",
                          since=time.time() - pricer.window_s)
    tailer.start()
    try:
        assert got.wait(10), "the late process did not read the window's demand"
        assert pricer.demand(pricer.cell(*TIMES_SQUARE)) == 2
    finally:
        tailer.stop()
