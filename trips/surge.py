"""Surge: a price multiplier per H3 cell from recent demand against available supply.

Demand is the riders' requests in a sliding window (``window_s``) timed by an injected clock, so
tests and the simulator control time. Supply is passed in by the caller (available drivers per
cell) because ``trips`` does not depend on the live index. Both are summed over the cell and its
ring-1 neighbours, so one busy hexagon edge does not flip prices street by street.

The multiplier is ``Decimal``, stepped to ``step`` and clamped to ``[1, cap]``, so the money path
never sees a float. A cell's value is recomputed at most once per ``update_interval_s`` and
exponentially smoothed across those updates (``alpha`` weight on the new raw value), so a burst of
requests raises prices over a few updates rather than at once, and the price a rider sees does not
change with how often it is asked for.
"""

from __future__ import annotations

import functools
import heapq
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import h3

Supply = Callable[[str], int] | Mapping[str, int]
Clock = Callable[[], float]

ONE = Decimal(1)


@dataclass
class _CellState:
    smoothed: float
    updated_at: float
    published: Decimal


def _check_latlng(lat: float, lng: float) -> None:
    for name, value, bound in (("lat", lat, 90.0), ("lng", lng, 180.0)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        if not math.isfinite(value) or not -bound <= value <= bound:
            raise ValueError(f"{name}: must be finite, in [-{bound:g}, {bound:g}], got {value!r}")


class SurgePricer:
    """Thread-safe surge state for one city."""

    def __init__(
        self,
        *,
        resolution: int = 7,
        window_s: float = 300.0,
        cap: Decimal | str = Decimal("3.0"),
        step: Decimal | str = Decimal("0.1"),
        sensitivity: float = 1.0,
        alpha: float = 0.5,
        update_interval_s: float = 30.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0 <= resolution <= 15:
            raise ValueError(f"resolution: must be in 0..15, got {resolution}")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s: must be > 0, got {window_s}")
        self.cap = Decimal(cap)
        self.step = Decimal(step)
        if not (self.cap.is_finite() and self.cap >= ONE):
            raise ValueError(f"cap: must be >= 1, got {cap}")
        if not (self.step.is_finite() and self.step > 0):
            raise ValueError(f"step: must be > 0, got {step}")
        if not (math.isfinite(sensitivity) and sensitivity > 0):
            raise ValueError(f"sensitivity: must be > 0, got {sensitivity}")
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha: must be in (0, 1], got {alpha}")
        if not (math.isfinite(update_interval_s) and update_interval_s >= 0):
            raise ValueError(f"update_interval_s: must be >= 0, got {update_interval_s}")
        self.resolution = resolution
        self.window_s = float(window_s)
        self.sensitivity = sensitivity
        self.alpha = alpha
        self.update_interval_s = float(update_interval_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._events: list[tuple[float, str]] = []  # min-heap by ts: tolerates out-of-order ts
        self._demand: dict[str, int] = {}
        self._cells: dict[str, _CellState] = {}

    def cell(self, lat: float, lng: float) -> str:
        _check_latlng(lat, lng)
        return str(h3.latlng_to_cell(lat, lng, self.resolution))

    def record_request(self, lat: float, lng: float, ts: float | None = None) -> str:
        """Count one ride request at (lat, lng), at ``ts`` (default: now). Returns its cell."""
        cell = self.cell(lat, lng)
        if ts is not None and (isinstance(ts, bool) or not math.isfinite(ts)):
            raise ValueError(f"ts: must be a finite number, got {ts!r}")
        with self._lock:
            now = self._clock()
            at = now if ts is None else float(ts)
            if at <= now - self.window_s:
                return cell  # already outside the window
            heapq.heappush(self._events, (at, cell))
            self._demand[cell] = self._demand.get(cell, 0) + 1
        return cell

    def demand(self, cell: str) -> int:
        """Requests in the window over ``cell`` and its ring-1 neighbours."""
        disk = _ring(cell)
        with self._lock:
            self._expire(self._clock())
            return sum(self._demand.get(c, 0) for c in disk)

    def multiplier(self, lat: float, lng: float, supply: Supply) -> Decimal:
        """The surge multiplier to quote at (lat, lng), given available drivers per cell."""
        return self.cell_multiplier(self.cell(lat, lng), supply)

    def cell_multiplier(self, cell: str, supply: Supply) -> Decimal:
        disk = _ring(cell)
        available = sum(_supply_count(supply, c) for c in disk)
        with self._lock:
            now = self._clock()
            state = self._cells.get(cell)
            if state is not None and now - state.updated_at < self.update_interval_s:
                return state.published
            self._expire(now)
            wanted = sum(self._demand.get(c, 0) for c in disk)
            return self._update(cell, state, now, wanted, available)

    def snapshot(self) -> dict[str, Decimal]:
        """Cell -> last published multiplier, for cells that have one (the debugging map)."""
        with self._lock:
            return {c: s.published for c, s in self._cells.items()}

    def _update(
        self, cell: str, state: _CellState | None, now: float, wanted: int, available: int
    ) -> Decimal:
        ratio = wanted / max(available, 1)
        raw = min(float(self.cap), max(1.0, 1.0 + self.sensitivity * (ratio - 1.0)))
        previous = 1.0 if state is None else state.smoothed
        smoothed = previous + self.alpha * (raw - previous)
        published = self._quantise(smoothed)
        if published == ONE and wanted == 0:
            self._cells.pop(cell, None)  # back to normal: forget, so state stays bounded
        else:
            self._cells[cell] = _CellState(smoothed, now, published)
        return published

    def _quantise(self, value: float) -> Decimal:
        # repr() gives the shortest decimal that round-trips, so 1.25 stays 1.25 and rounds up.
        steps = (Decimal(repr(value)) / self.step).quantize(ONE, rounding=ROUND_HALF_UP)
        return min(self.cap, max(ONE, steps * self.step))

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        events, demand = self._events, self._demand
        while events and events[0][0] <= horizon:
            _, cell = heapq.heappop(events)
            left = demand[cell] - 1
            if left:
                demand[cell] = left
            else:
                del demand[cell]


@functools.lru_cache(maxsize=8192)
def _ring(cell: str) -> tuple[str, ...]:
    """The cell and its ring-1 neighbours. A cell's never change, and every quote asks for
    them (h3's grid_disk was ~1% of a simulated hour); a city has a few thousand cells."""
    return tuple(h3.grid_disk(cell, 1))


def _supply_count(supply: Supply, cell: str) -> int:
    n = supply(cell) if callable(supply) else supply.get(cell, 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"supply[{cell}]: expected a non-negative int, got {n!r}")
    return n
