"""Time as a dependency: the API runs on the wall clock and a timer thread; the simulator
passes its own clock and event queue, so the same dispatch code runs an hour in seconds."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ridehail.kernel.logging import get_logger

log = get_logger(__name__)


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (or since the simulation started)."""
        ...


class Timers(Protocol):
    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run `fn` once at `when` (the clock's time), on the timers' own thread or loop."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ThreadTimers:
    """One daemon thread running callbacks at their time; a callback that raises is logged
    and the thread goes on. Deadlines are also swept from the database (`Engine.sweep`), so a
    timer lost with its process still fires elsewhere."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="dispatch-timers")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), fn))
            self._cond.notify_all()

    def every(self, interval: float, fn: Callable[[], object]) -> None:
        """Run `fn` every `interval` seconds (its result, e.g. a count of swept rows, is
        ignored)."""
        def tick() -> None:
            try:
                fn()
            finally:
                self.call_at(self.clock.now() + interval, tick)

        self.call_at(self.clock.now() + interval, tick)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap:
                        delay = self._heap[0][0] - self.clock.now()
                        if delay <= 0:
                            break
                        self._cond.wait(min(delay, 1.0))
                    else:
                        self._cond.wait(1.0)
                if self._stopped:
                    return
                _when, _seq, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:  # noqa: BLE001 - one failing timer must not stop the others
                log.exception("timer callback failed")
