"""The batched policy: requests collected over a short window are assigned together by solving
the assignment problem on pickup ETAs (scipy's Hungarian solver), instead of each taking the
nearest driver in arrival order."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from geoindex import Neighbor
from ridehail.kernel.clock import Clock
from trips.model import TripState

from .clock import Timers
from .matcher import Matcher
from .model import DispatchRecord
from .unit import DispatchUnits

NO_EDGE = 1e9


class Batcher:
    def __init__(self, units: DispatchUnits, matcher: Matcher, clock: Clock, timers: Timers,
                 window_s: float) -> None:
        self.units = units
        self.matcher = matcher
        self.clock = clock
        self.timers = timers
        self.window_s = window_s
        self._pending: list[str] = []

    def enqueue(self, trip_id: str) -> None:
        first = not self._pending
        self._pending.append(trip_id)
        if first:
            self.timers.call_at(self.clock.now() + self.window_s, self.run)

    def run(self) -> None:
        batch, self._pending = self._pending, []
        self.assign(batch)

    def assign(self, trip_ids: list[str]) -> None:
        waiting = []
        for trip_id in trip_ids:
            with self.units(readonly=True) as uow:
                trip = uow.trips.get(trip_id)
                record = uow.records.get(trip_id)
            if trip is None or trip.state != TripState.requested:
                continue
            record = record or DispatchRecord(trip_id, self.clock.now())
            exclude = record.tried_drivers() | set(trip.rejected_drivers)
            waiting.append((trip, exclude, record))
        # One columnar index query for the whole batch, not one search per trip.
        ranked: dict[str, list[tuple[float, Neighbor]]] = self.matcher.candidates_many(waiting)
        if not ranked:
            return
        rows = list(ranked)
        drivers = sorted({n.driver_id for cands in ranked.values() for _, n in cands})
        col = {d: j for j, d in enumerate(drivers)}
        cost = np.full((len(rows), max(len(drivers), 1)), NO_EDGE)
        for i, trip_id in enumerate(rows):
            for eta, n in ranked[trip_id]:
                cost[i, col[n.driver_id]] = eta
        r_idx, c_idx = linear_sum_assignment(cost)
        chosen: dict[str, str] = {}
        for i, j in zip(r_idx, c_idx, strict=True):
            if cost[i, j] < NO_EDGE:
                chosen[rows[i]] = drivers[j]
        taken = set(chosen.values())
        for trip_id in rows:
            mine = chosen.get(trip_id)
            order = [c for c in ranked[trip_id] if c[1].driver_id == mine]
            # Fall back to this trip's other candidates that no other trip was given.
            order += [c for c in ranked[trip_id] if c[1].driver_id not in taken]
            self.matcher.dispatch(trip_id, only=order if order else None)
