"""The driver directory: who is online, in which state and class, and where (the live index).

It owns the drivers' dispatch states in the database (online, offline) and their mirror in this
process's memory, which location ingest reads without a database round trip. Every status
change anyone commits (an offer, an accept, a trip step) goes through `set_status`, so the
memory, the index's availability flag and the other processes (driver events) agree.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from geoindex import GeoIndex
from ridehail.kernel.clock import Clock
from ridehail.kernel.errors import Conflict

from .feed import FeedRows, LocationFeed
from .locations import BadLocation, ts_refusal
from .model import DriverBusy, DriverState, DriverStatus, DriverSummary, NotOnline
from .offers import withdraw_offers_of_driver
from .ports import DriverEvents, Point, TraceStore
from .unit import DispatchUnits

RECONCILE_PAGE = 1000  # drivers read per transaction by the reconcile pass


@dataclass
class DriverEntry:
    """What location ingest needs to know about a driver, without a database round trip."""

    status: DriverStatus
    vehicle_class: str
    trip_id: str | None = None


class DriverDirectory:
    def __init__(self, units: DispatchUnits, index: GeoIndex, clock: Clock, feed: LocationFeed,
                 events: DriverEvents, traces: TraceStore) -> None:
        self.units = units
        self.index = index
        self.clock = clock
        self.feed = feed
        self.events = events
        self.traces = traces
        self.entries: dict[str, DriverEntry] = {}

    # --- the memory mirror -------------------------------------------------------------------

    def restore(self) -> int:
        """Load online drivers' states (after a restart); their positions come with their next
        location update."""
        return self.reconcile()

    def reconcile(self) -> int:
        """Re-read online drivers from the database: repairs driver events lost while Redis
        was away. A timer pays this whole-fleet pass, never a request, and it reads the fleet a
        page at a time, giving the GIL up between pages: read whole, 10,000 drivers held it
        for about 0.5 s every 10 s (py-spy, bench/cluster.py), and a request behind it waited.
        A driver known here as the database has it costs a comparison. Only drivers known
        before the pass began are forgotten, so one who comes online during it stays."""
        known_before = set(self.entries)
        online: set[str] = set()
        after = 0
        while True:
            with self.units(readonly=True) as uow:
                page = uow.drivers.online_page(after, RECONCILE_PAGE)
            for summary in page:
                online.add(summary.driver_id)
                entry = self.entries.get(summary.driver_id)
                if entry is None or (entry.status, entry.vehicle_class, entry.trip_id) != (
                        summary.status, summary.vehicle_class, summary.trip_id):
                    self._remember(summary)
            if len(page) < RECONCILE_PAGE:
                break
            after = int(page[-1].driver_id)
            time.sleep(0)  # let request threads take the GIL between pages
        for driver_id in known_before - online:
            self._forget(driver_id)
        return len(online)

    def _remember(self, st: DriverState | DriverSummary) -> None:
        if st.status == DriverStatus.offline:
            self._forget(st.driver_id)
            return
        self.entries[st.driver_id] = DriverEntry(st.status, st.vehicle_class, st.trip_id)
        # No position yet (KeyError): the driver joins the index with its first location.
        with contextlib.suppress(KeyError):
            self.index.set_available(st.driver_id, st.status == DriverStatus.available)

    def _forget(self, driver_id: str) -> None:
        self.entries.pop(driver_id, None)
        self.index.remove(driver_id)

    def entry(self, driver_id: str) -> DriverEntry | None:
        """The driver as this process knows it; loaded from the database when another process
        (or a restart) took the change."""
        entry = self.entries.get(driver_id)
        if entry is None:
            with self.units(readonly=True) as uow:
                st = uow.drivers.get(driver_id)
            if st is None or st.status == DriverStatus.offline:
                return None
            self._remember(st)
            entry = self.entries[driver_id]
        return entry

    def _load(self, driver_ids: list[str]) -> None:
        with self.units(readonly=True) as uow:
            states = uow.drivers.many(driver_ids)
        for st in states:
            if st.status != DriverStatus.offline:
                self._remember(st)

    def local_state(self, driver_id: str) -> tuple[bool, str] | None:
        """(available, vehicle class) as this process knows it; None for a stranger."""
        entry = self.entries.get(driver_id)
        if entry is None:
            return None
        return entry.status == DriverStatus.available, entry.vehicle_class

    def set_status(self, driver_id: str, status: DriverStatus, trip_id: str | None) -> None:
        """Mirror a committed status change here, in the index and in the other processes."""
        entry = self.entries.get(driver_id)
        if entry is not None:
            entry.status = status
            entry.trip_id = trip_id
        with contextlib.suppress(KeyError):
            self.index.set_available(driver_id, status == DriverStatus.available)
        self.events.announce(driver_id, status.value,
                             entry.vehicle_class if entry is not None else None, trip_id)

    def apply_event(self, driver_id: str, status: str, vehicle_class: str | None,
                    trip_id: str | None) -> None:
        """Another process committed a status change: mirror it (the database stays the truth;
        dispatch re-checks it before offering)."""
        st = DriverStatus(status)
        if st == DriverStatus.offline:
            self._forget(driver_id)
            return
        entry = self.entries.get(driver_id)
        if entry is None:
            if vehicle_class is None:
                return  # unknown here; entry() loads it from the database on use
            self.entries[driver_id] = DriverEntry(st, vehicle_class, trip_id)
        else:
            entry.status = st
            entry.trip_id = trip_id
        with contextlib.suppress(KeyError):
            self.index.set_available(driver_id, st == DriverStatus.available)

    # --- online and offline ------------------------------------------------------------------

    def go_online(self, driver_id: str, vehicle_class: str) -> DriverState:
        now = self.clock.now()
        with self.units() as uow:
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
                raise changed_concurrently(driver_id) from None
            uow.commit()
        self._remember(st)
        self.events.announce(driver_id, st.status.value, st.vehicle_class, st.trip_id)
        return st

    def go_offline(self, driver_id: str) -> tuple[DriverState, str | None]:
        """Going offline withdraws a pending offer; returns the state and the trip to match
        again (the caller dispatches it). A driver on a trip must finish or cancel it first."""
        now = self.clock.now()
        redispatch: str | None = None
        with self.units() as uow:
            st = uow.drivers.get(driver_id)
            if st is None:
                return DriverState(driver_id, "standard", DriverStatus.offline, now), None
            if st.status in (DriverStatus.en_route, DriverStatus.on_trip):
                raise DriverBusy(f"driver {driver_id} is {st.status.value} on trip {st.trip_id}")
            try:
                if st.status == DriverStatus.offered:
                    redispatch = withdraw_offers_of_driver(uow, driver_id, now)
                st.status = DriverStatus.offline
                st.trip_id = None
                st.updated_at = now
                uow.drivers.save(st)
            except Conflict:
                raise changed_concurrently(driver_id) from None
            uow.commit()
        self._remember(st)
        self.events.announce(driver_id, st.status.value, st.vehicle_class, None)
        return st, redispatch

    # --- locations ---------------------------------------------------------------------------

    def update_location(self, driver_id: str, lat: float, lng: float,
                        ts: float | None = None) -> None:
        """One driver's location: a batch of one, under the same rules (a refusal is raised,
        naming the field)."""
        if self.entry(driver_id) is None:
            raise self.refusal(driver_id, {"reason": "offline"})
        _accepted, rejected = self.update_locations([(driver_id, lat, lng, ts)])
        if rejected:
            raise self.refusal(driver_id, rejected[0])

    @staticmethod
    def refusal(driver_id: str, rejected: dict[str, object]) -> NotOnline | BadLocation:
        """The error for one row `update_locations` refused: a bad field names it; a row
        without one is a driver who is not online (or went offline meanwhile)."""
        field = rejected.get("field")
        if field is None:
            return NotOnline(f"driver {driver_id} is offline; go online before sending "
                             "locations")
        return BadLocation(str(field), str(rejected["reason"]))

    def update_locations(self, rows: list[tuple[str, float, float, float | None]]
                         ) -> tuple[int, list[dict[str, object]]]:
        """A fleet gateway's batch: the valid rows of online drivers are applied, the others
        are reported with a reason."""
        out = FeedRows()
        trace_points: dict[str, list[Point]] = {}
        rejected: list[dict[str, object]] = []
        now = self.clock.now()
        # Drivers this process does not know yet are read in one batch, not one read each.
        entries = self.entries
        unknown = {row[0] for row in rows if row[0] not in entries}
        if unknown:
            self._load(sorted(unknown))
        # The hot loops of every fleet tick (thousands of rows): plain appends, no method calls
        # per row but the rule's, and that only for a row it refuses.
        ttl = self.index.ttl_s
        cutoff = now - ttl
        cand: list[int] = []
        cand_ids: list[str] = []
        cand_ts: list[float] = []
        cand_stamped: list[bool] = []
        for i, (driver_id, _lat, _lng, ts) in enumerate(rows):
            if driver_id not in entries:
                rejected.append({"index": i, "driver_id": driver_id, "reason": "offline"})
                continue
            t = now if ts is None else ts
            if t < cutoff:
                rejected.append({"index": i, "driver_id": driver_id, "field": "ts",
                                 "reason": ts_refusal(t, now, ttl, None)})
                continue
            cand.append(i)
            cand_ids.append(driver_id)
            cand_ts.append(t)
            cand_stamped.append(ts is None)
        # The order against each driver's last accepted time, advanced atomically by the feed.
        previous = self.feed.advance(cand_ids, cand_ts, cand_stamped) if cand else []
        ids, lats, lngs, avail, classes, tss = (out.ids, out.lats, out.lngs, out.available,
                                                out.classes, out.ts)
        origin: list[int] = []  # out's row -> the request's row
        trips: list[str | None] = []
        available, on_trip = DriverStatus.available, DriverStatus.on_trip
        for i, driver_id, t, prev in zip(cand, cand_ids, cand_ts, previous, strict=True):
            if prev is not None and t < prev:
                rejected.append({"index": i, "driver_id": driver_id, "field": "ts",
                                 "reason": ts_refusal(t, now, ttl, prev)})
                continue
            given = rows[i]
            entry = entries[driver_id]
            status = entry.status
            ids.append(driver_id)
            lats.append(given[1])
            lngs.append(given[2])
            avail.append(status is available)
            classes.append(entry.vehicle_class)
            tss.append(t)
            origin.append(i)
            trips.append(entry.trip_id if status is on_trip else None)
        accepted = 0
        bad: set[int] = set()
        if len(out):
            result = self.feed.publish(out)
            accepted = result.applied
            for row, field_, reason in result.rejected:
                bad.add(row)
                rejected.append({"index": origin[row], "driver_id": out.ids[row],
                                 "field": field_, "reason": reason})
        # The meter's trace takes the accepted points only.
        for row, trip_id in enumerate(trips):
            if trip_id is not None and row not in bad:
                trace_points.setdefault(trip_id, []).append((tss[row], lats[row], lngs[row]))
        self.traces.add(trace_points)
        return accepted, rejected


def changed_concurrently(driver_id: str) -> DriverBusy:
    # A concurrent status change (a double tap, an offer expiring, another process) won the
    # compare-and-set: a 409 the app retries, never a 500.
    return DriverBusy(f"driver {driver_id}'s status changed concurrently; retry")
