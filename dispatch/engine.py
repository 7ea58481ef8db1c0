"""The engine facade: the one object the API and the simulator drive. It composes the unit of
work, the live index, the clock and timers, the driver channel, the ETA model, fares and surge.

Use cases are grouped by topic in mixins (drivers here, matching in `matching.py`, the trip
lifecycle in `lifecycle.py`); each runs its own unit of work and touches the in-memory index
and channel only after it has committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import h3

from geoindex import GeoIndex, Neighbor
from ridehail.kernel.errors import Conflict
from trips.area import ServiceArea
from trips.fares import NYC_YELLOW_2016, Tariff
from trips.surge import SurgePricer

from .channel import OfferChannel
from .clock import Clock, SystemClock, Timers
from .cluster import LocalEvents, LocalTraces
from .eta import EtaModel, StraightLineEta
from .feed import FeedRows, InProcessFeed, LocationFeed
from .lifecycle import Lifecycle
from .matching import Matching
from .model import DriverBusy, DriverState, DriverStatus, NotOnline

Trace = list[tuple[float, float, float]]


@dataclass
class DispatchConfig:
    offer_timeout_s: float = 15.0
    radius_m: float = 5000.0
    radius_steps: tuple[float, ...] = (0.3, 0.6, 1.0)  # fractions of radius_m, tried in turn
    max_candidates: int = 10
    policy: str = "greedy"
    batch_window_s: float = 2.0
    surge_resolution: int = 7
    supply_refresh_s: float = 5.0


@dataclass
class DriverEntry:
    """What location ingest needs to know about a driver, without a database round trip."""

    status: DriverStatus
    vehicle_class: str
    trip_id: str | None = None


@dataclass
class Hooks:
    """Side effects the composition root plugs in (Celery in the API, counters in the sim)."""

    trip_completed: Callable[[str], None] = lambda trip_id: None
    trip_finished: Callable[[str, str], None] = lambda trip_id, state: None
    offer_made: Callable[[Any], None] = lambda offer: None
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(Matching, Lifecycle):
    def __init__(
        self,
        uow_factory: Callable[..., Any],
        index: GeoIndex,
        *,
        new_id: Callable[[], str],
        clock: Clock | None = None,
        timers: Timers,
        channel: OfferChannel | None = None,
        eta: EtaModel | None = None,
        config: DispatchConfig | None = None,
        service_area: ServiceArea | None = None,
        tariff: Tariff = NYC_YELLOW_2016,
        surge: SurgePricer | None = None,
        hooks: Hooks | None = None,
        feed: LocationFeed | None = None,
        events: Any = None,
        traces: Any = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.index = index
        self.new_id = new_id
        self.clock = clock or SystemClock()
        self.timers = timers
        self.channel = channel or OfferChannel()
        self.eta = eta or StraightLineEta()
        self.config = config or DispatchConfig()
        self.service_area = service_area
        self.tariff = tariff
        self.surge = surge
        self.hooks = hooks or Hooks()
        self.directory: dict[str, DriverEntry] = {}
        # Embedded by default; the scaled mode plugs in the Redis ones (ridehail/bootstrap.py).
        self.feed: LocationFeed = feed or InProcessFeed(index)
        self.events = events or LocalEvents()
        self.traces = traces if traces is not None else LocalTraces()
        self._supply: tuple[float, dict[str, int]] = (-1e18, {})
        self._pending_batch = []
        self.driver_rating = {}

    # --- drivers ---------------------------------------------------------------------------

    def restore(self) -> int:
        """Load online drivers' states (after a restart); their positions come with their next
        location update."""
        with self.uow_factory(readonly=True) as uow:
            states = uow.drivers.online()
        for st in states:
            self._remember(st)
        return len(states)

    def _remember(self, st: DriverState) -> None:
        if st.status == DriverStatus.offline:
            self.directory.pop(st.driver_id, None)
            self.index.remove(st.driver_id)
            return
        self.directory[st.driver_id] = DriverEntry(st.status, st.vehicle_class, st.trip_id)
        # No position yet (KeyError): the driver joins the index with its first location.
        with contextlib.suppress(KeyError):
            self.index.set_available(st.driver_id, st.status == DriverStatus.available)

    def go_online(self, driver_id: str, vehicle_class: str) -> DriverState:
        now = self.clock.now()
        with self.uow_factory() as uow:
            st = uow.drivers.get(driver_id)
            try:
                if st is None:
                    st = DriverState(driver_id, vehicle_class, DriverStatus.available, now)
                    uow.drivers.add(st)
                elif st.status == DriverStatus.offline:
                    st.status = DriverStatus.available
                    st.vehicle_class = vehicle_class
                    st.updated_at = now
                    uow.drivers.save(st)
            except Conflict:
                raise _changed_concurrently(driver_id) from None
            uow.commit()
        self._remember(st)
        self.events.announce(driver_id, st.status.value, st.vehicle_class, st.trip_id)
        return st

    def go_offline(self, driver_id: str) -> DriverState:
        """Going offline withdraws a pending offer (the trip goes to the next driver); a driver
        on a trip must finish or cancel it first."""
        now = self.clock.now()
        redispatch: str | None = None
        with self.uow_factory() as uow:
            st = uow.drivers.get(driver_id)
            if st is None:
                return DriverState(driver_id, "standard", DriverStatus.offline, now)
            if st.status in (DriverStatus.en_route, DriverStatus.on_trip):
                from .model import DriverBusy

                raise DriverBusy(f"driver {driver_id} is {st.status.value} on trip {st.trip_id}")
            try:
                if st.status == DriverStatus.offered:
                    redispatch = self._withdraw_offers_of_driver(uow, driver_id, now)
                st.status = DriverStatus.offline
                st.trip_id = None
                st.updated_at = now
                uow.drivers.save(st)
            except Conflict:
                raise _changed_concurrently(driver_id) from None
            uow.commit()
        self._remember(st)
        self.events.announce(driver_id, st.status.value, st.vehicle_class, None)
        if redispatch:
            self.dispatch(redispatch)
        return st

    def driver_entry(self, driver_id: str) -> DriverEntry | None:
        entry = self.directory.get(driver_id)
        if entry is None:
            # Not in this process's memory (a restart, or another process took the change).
            with self.uow_factory(readonly=True) as uow:
                st = uow.drivers.get(driver_id)
            if st is None or st.status == DriverStatus.offline:
                return None
            self._remember(st)
            entry = self.directory[driver_id]
        return entry

    def update_location(self, driver_id: str, lat: float, lng: float,
                        ts: float | None = None) -> None:
        entry = self.driver_entry(driver_id)
        if entry is None:
            raise NotOnline(f"driver {driver_id} is offline; go online before sending locations")
        ts = self.clock.now() if ts is None else ts
        rows = FeedRows()
        rows.add(driver_id, lat, lng, entry.status == DriverStatus.available,
                 entry.vehicle_class, ts)
        self.feed.publish(rows)
        if entry.status == DriverStatus.on_trip and entry.trip_id is not None:
            self.traces.add({entry.trip_id: [(ts, lat, lng)]})

    def update_locations(self, rows: list[tuple[str, float, float, float | None]]
                         ) -> tuple[int, list[dict[str, Any]]]:
        """A fleet gateway's batch: the valid rows of online drivers are applied, the others
        are reported with a reason."""
        out = FeedRows()
        trace_points: dict[str, Trace] = {}
        rejected: list[dict[str, Any]] = []
        now = self.clock.now()
        # The hot loop of every fleet tick (thousands of rows): plain appends, no method calls.
        directory = self.directory
        ids, lats, lngs, avail, classes, tss = (out.ids, out.lats, out.lngs, out.available,
                                                out.classes, out.ts)
        available, on_trip = DriverStatus.available, DriverStatus.on_trip
        for i, (driver_id, lat, lng, ts) in enumerate(rows):
            entry = directory.get(driver_id) or self.driver_entry(driver_id)
            if entry is None:
                rejected.append({"index": i, "driver_id": driver_id, "reason": "offline"})
                continue
            t = now if ts is None else ts
            status = entry.status
            ids.append(driver_id)
            lats.append(lat)
            lngs.append(lng)
            avail.append(status is available)
            classes.append(entry.vehicle_class)
            tss.append(t)
            if status is on_trip and entry.trip_id is not None:
                trace_points.setdefault(entry.trip_id, []).append((t, lat, lng))
        accepted = 0
        if len(out):
            result = self.feed.publish(out)
            accepted = result.applied
            for row, field_, reason in result.rejected:
                rejected.append({"driver_id": out.ids[row], "field": field_, "reason": reason})
        self.traces.add(trace_points)
        return accepted, rejected

    # --- state shared across processes ----------------------------------------------------

    def apply_driver_event(self, driver_id: str, status: str, vehicle_class: str | None,
                           trip_id: str | None) -> None:
        """Another process committed a status change: mirror it in this process's directory
        and index (the database stays the truth; dispatch re-checks it before offering)."""
        st = DriverStatus(status)
        if st == DriverStatus.offline:
            self.directory.pop(driver_id, None)
            self.index.remove(driver_id)
            return
        entry = self.directory.get(driver_id)
        if entry is None:
            if vehicle_class is None:
                return  # unknown here; driver_entry() loads it from the database on use
            self.directory[driver_id] = DriverEntry(st, vehicle_class, trip_id)
        else:
            entry.status = st
            entry.trip_id = trip_id
        with contextlib.suppress(KeyError):
            self.index.set_available(driver_id, st == DriverStatus.available)

    def local_state(self, driver_id: str) -> tuple[bool, str] | None:
        """(available, vehicle class) as this process knows it; None for a stranger."""
        entry = self.directory.get(driver_id)
        if entry is None:
            return None
        return entry.status == DriverStatus.available, entry.vehicle_class

    def reconcile(self) -> int:
        """Re-read online drivers from the database: repairs driver events lost while Redis
        was away. A timer pays this whole-fleet pass, never a request."""
        with self.uow_factory(readonly=True) as uow:
            states = uow.drivers.online()
        online = {st.driver_id for st in states}
        for st in states:
            self._remember(st)
        for driver_id in [d for d in list(self.directory) if d not in online]:
            self.directory.pop(driver_id, None)
            self.index.remove(driver_id)
        return len(states)

    # --- queries ---------------------------------------------------------------------------

    def nearby(self, lat: float, lng: float, radius_m: float, limit: int,
               vehicle_class: str | None = None) -> list[tuple[Neighbor, float]]:
        snap = self.index.snapshot()
        found = snap.nearest(lat, lng, k=limit, radius_m=radius_m, available_only=True,
                             vehicle_class=vehicle_class, now=self.clock.now())
        return [(n, self.eta.pickup_eta_s(n.distance_m, n.lat, n.lng, lat, lng)) for n in found]

    def supply(self) -> dict[str, int]:
        """Available drivers per surge cell, recomputed at most every supply_refresh_s: the
        whole-fleet pass is paid on a timer, not on every request."""
        at, cached = self._supply
        now = self.clock.now()
        if now - at < self.config.supply_refresh_s:
            return cached
        snap = self.index.snapshot()
        fresh: dict[str, int] = {}
        if snap.backend == "h3":
            for c in snap.cells(self.config.surge_resolution, now=now):
                if c.available:
                    fresh[c.cell] = c.available
        else:
            res = self.config.surge_resolution
            for d in snap.drivers(now=now):
                if d.available:
                    cell = h3.latlng_to_cell(d.lat, d.lng, res)
                    fresh[cell] = fresh.get(cell, 0) + 1
        self._supply = (now, fresh)
        return fresh

    def surge_at(self, lat: float, lng: float) -> Decimal:
        if self.surge is None:
            return Decimal(1)
        return self.surge.multiplier(lat, lng, self.supply())


def _changed_concurrently(driver_id: str) -> DriverBusy:
    # A concurrent status change (a double tap, an offer expiring, another process) won the
    # compare-and-set: a 409 the app retries, never a 500.
    return DriverBusy(f"driver {driver_id}'s status changed concurrently; retry")
