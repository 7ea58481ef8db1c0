"""The batched policy: requests collected over a short window are assigned together by solving
the assignment problem on pickup ETAs (scipy's Hungarian solver), instead of each taking the
nearest driver in arrival order.

Where supply is tight, three settings (`DispatchConfig.batch_*`, all off by default) keep the
assignment from sending drivers on long empty drives, the "wild goose chase" of Castillo,
Knoepfle and Weyl (2017):

- `batch_hold_s`: a trip the window could not match stays queued for the next windows, up to
  this long after its request, instead of taking whoever is left (or ending no_driver_found).
- `batch_eta_cap_s` and `batch_eta_cap_growth`: a driver is a candidate only if their pickup
  ETA is at most the cap plus `growth` x the seconds the trip has waited, so a fresh request
  waits a little for a near driver and an old one takes a farther one.
- `batch_forward_s`: drivers whose current trip ends within this many seconds are candidates
  too, at their remaining time plus the drive from their dropoff (forward dispatch). A trip
  assigned to one is held, not offered: the offer goes out in a later window, once that
  driver is available, so a driver never holds two trips.

A held trip is never claimed: it is a `requested` trip in this process's queue, so every
invariant of offers and claims is the matcher's, unchanged."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from geoindex import Neighbor
from ridehail.kernel.clock import Clock
from trips.model import Trip, TripState

from .clock import Timers
from .matcher import DispatchConfig, Matcher, Ranked
from .model import DispatchRecord, DriverStatus
from .unit import DispatchUnits

NO_EDGE = 1e9


@dataclass(frozen=True)
class Finishing:
    """A driver on a trip that ends soon: when, and their ETA to a pickup from its dropoff."""

    driver_id: str
    remaining_s: float
    eta_s: float


class Batcher:
    def __init__(self, units: DispatchUnits, matcher: Matcher, clock: Clock, timers: Timers,
                 config: DispatchConfig) -> None:
        self.units = units
        self.matcher = matcher
        self.clock = clock
        self.timers = timers
        self.config = config
        self._pending: list[str] = []
        self._scheduled = False
        self._lock = threading.Lock()  # requests enqueue on their threads, windows run on timers

    def enqueue(self, trip_id: str) -> None:
        with self._lock:
            self._pending.append(trip_id)
            self._schedule()

    def _schedule(self) -> None:
        """The next window, unless one is due already (the caller holds the lock)."""
        if not self._scheduled and self._pending:
            self._scheduled = True
            self.timers.call_at(self.clock.now() + self.config.batch_window_s, self.run)

    def run(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._scheduled = False
        held: list[str] = []
        try:
            held = self.assign(batch)
        finally:  # a window that failed still lets the next one run for the others
            with self._lock:
                self._pending[:0] = held  # the oldest first, as they came
                self._schedule()

    def cap_s(self, waited_s: float) -> float:
        """The longest pickup ETA a trip that has waited this long may be offered."""
        cfg = self.config
        if cfg.batch_eta_cap_s <= 0:
            return NO_EDGE
        return cfg.batch_eta_cap_s + cfg.batch_eta_cap_growth * max(0.0, waited_s)

    def may_hold(self, trip: Trip, now: float) -> bool:
        """Whether the trip may wait for the next window (its request plus batch_hold_s)."""
        return now + self.config.batch_window_s - trip.requested_at <= self.config.batch_hold_s

    def assign(self, trip_ids: list[str]) -> list[str]:
        """Assign this window's trips; returns those held for a later window."""
        now = self.clock.now()
        waiting: list[tuple[Trip, set[str], DispatchRecord]] = []
        with self.units(readonly=True) as uow:
            for trip_id in trip_ids:
                trip = uow.trips.get(trip_id)
                if trip is None or trip.state != TripState.requested:
                    continue  # cancelled meanwhile, or matched by another process
                record = uow.records.get(trip_id) or DispatchRecord(trip_id, now)
                waiting.append((trip, record.tried_drivers() | set(trip.rejected_drivers),
                                record))
        trips = {trip.id: trip for trip, _, _ in waiting}
        excluded = {trip.id: exclude for trip, exclude, _ in waiting}
        # One columnar index query for the whole batch, not one search per trip.
        found = self.matcher.candidates_many(waiting)
        ranked: dict[str, Ranked] = {}
        for trip_id, trip in trips.items():
            cap = self.cap_s(now - trip.requested_at)
            ranked[trip_id] = [c for c in found.get(trip_id, []) if c[0] <= cap]
        ahead: dict[str, list[Finishing]] = {}
        if self.config.batch_forward_s > 0:
            holdable = [t for t in trips.values() if self.may_hold(t, now)]
            for trip_id, soon in self.finishing(holdable, excluded).items():
                cap = self.cap_s(now - trips[trip_id].requested_at)
                ahead[trip_id] = [f for f in soon if f.eta_s <= cap]
        if not trips:
            return []
        rows = list(trips)
        drivers = sorted({n.driver_id for cands in ranked.values() for _, n in cands}
                         | {f.driver_id for fs in ahead.values() for f in fs})
        col = {d: j for j, d in enumerate(drivers)}
        cost = np.full((len(rows), max(len(drivers), 1)), NO_EDGE)
        for i, trip_id in enumerate(rows):
            for f in ahead.get(trip_id, ()):
                cost[i, col[f.driver_id]] = f.eta_s
            for eta, n in ranked[trip_id]:
                cost[i, col[n.driver_id]] = eta
        r_idx, c_idx = linear_sum_assignment(cost)
        chosen: dict[str, str] = {}
        for i, j in zip(r_idx, c_idx, strict=True):
            if cost[i, j] < NO_EDGE:
                chosen[rows[i]] = drivers[j]
        taken = set(chosen.values())
        held: list[str] = []
        for trip_id in rows:
            mine = chosen.get(trip_id)
            waiting_for = next((f for f in ahead.get(trip_id, ()) if f.driver_id == mine), None)
            if waiting_for is not None:
                # The best driver for it is finishing a trip: offer once they are free.
                held.append(trip_id)
                continue
            order = [c for c in ranked[trip_id] if c[1].driver_id == mine]
            # Fall back to this trip's other candidates that no other trip was given.
            order += [c for c in ranked[trip_id] if c[1].driver_id not in taken]
            if not order and self.may_hold(trips[trip_id], now):
                held.append(trip_id)  # nobody near enough yet: try again next window
                continue
            self.matcher.dispatch(trip_id, only=order if order else None)
        return held

    def finishing(self, trips: list[Trip], excluded: dict[str, set[str]]
                  ) -> dict[str, list[Finishing]]:
        """For each trip, drivers near its pickup on a trip whose dropoff is at most
        batch_forward_s away, with their ETA to this pickup: what is left of their trip, then
        dropoff to pickup. Their current trips are read once for the whole window."""
        cfg = self.config
        snap = self.matcher.index.snapshot()
        now = self.clock.now()
        near: dict[str, list[tuple[Neighbor, str]]] = {}
        for trip in trips:
            found = snap.nearest(trip.pickup_lat, trip.pickup_lng, k=3 * cfg.max_candidates,
                                 radius_m=cfg.radius_m, available_only=False,
                                 vehicle_class=trip.vehicle_class, now=now)
            busy = []
            for n in found:
                if n.available or n.driver_id in excluded[trip.id]:
                    continue
                entry = self.matcher.drivers.entry(n.driver_id)
                if (entry is not None and entry.status == DriverStatus.on_trip
                        and entry.trip_id is not None):
                    busy.append((n, entry.trip_id))
            if busy:
                near[trip.id] = busy
        if not near:
            return {}
        eta = self.matcher.eta
        # Where each busy driver's trip ends, and how long until it does (None: not soon).
        ends: dict[str, tuple[float, float, float] | None] = {}
        with self.units(readonly=True) as uow:
            for busy in near.values():
                for n, current_id in busy:
                    if n.driver_id in ends:
                        continue
                    current = uow.trips.get(current_id)
                    ends[n.driver_id] = None
                    if current is None or current.state != TripState.in_progress:
                        continue
                    lat, lng = current.dropoff_lat, current.dropoff_lng
                    left = eta.travel(n.lat, n.lng, lat, lng, now)[0]
                    if left <= cfg.batch_forward_s:
                        ends[n.driver_id] = (lat, lng, left)
        out: dict[str, list[Finishing]] = {}
        by_id = {t.id: t for t in trips}
        for trip_id, busy in near.items():
            trip = by_id[trip_id]
            found_f = []
            for n, _current in busy:
                end = ends[n.driver_id]
                if end is None:
                    continue
                lat, lng, left = end
                then = eta.travel(lat, lng, trip.pickup_lat, trip.pickup_lng, now + left)[0]
                found_f.append(Finishing(n.driver_id, left, left + then))
            found_f.sort(key=lambda f: (f.eta_s, f.driver_id))
            if found_f:
                out[trip_id] = found_f[: cfg.max_candidates]
        return out
