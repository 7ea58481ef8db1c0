"""Simulated time: a clock and an event queue in one object.

The engine takes it as both its `clock` (``now()``) and its `timers` (``call_at``), so offer
deadlines and batch windows fire in simulated time, and the whole run is a single thread
popping events in time order. Ties are broken by scheduling order (a sequence number), never
by comparing callbacks, so the same seed replays the same run.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class SimClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.events_run = 0

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        # An event in the past runs "now": time never goes backwards.
        heapq.heappush(self._heap, (max(float(when), self._now), next(self._seq), fn))

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        self.call_at(self._now + delay_s, fn)

    def pending(self) -> int:
        return len(self._heap)

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, end: float) -> None:
        """Run every event due at or before `end`, in order; then the clock reads `end`."""
        heap = self._heap
        while heap and heap[0][0] <= end:
            when, _seq, fn = heapq.heappop(heap)
            self._now = when
            fn()
            self.events_run += 1
        self._now = max(self._now, float(end))
