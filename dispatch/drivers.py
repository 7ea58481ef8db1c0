"""The driver directory: who is online, in which state and class, and where (the live index).

It owns the drivers' dispatch states in the database (online, offline) and their mirror in this
process's memory, which location ingest reads without a database round trip. Every status
change anyone commits (an offer, an accept, a trip step) goes through `set_status`, so the
memory, the index's availability flag and the other processes (driver events) agree.
"""

from __future__ import annotations

import contextlib
import operator
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from geoindex import GeoIndex
from ridehail.kernel.clock import Clock
from ridehail.kernel.errors import Conflict

from .feed import FeedRows, LocationFeed, pick
from .locations import BadLocation, ts_refusal
from .model import DriverBusy, DriverState, DriverStatus, DriverSummary, NotOnline
from .offers import withdraw_offers_of_driver
from .ports import DriverEvents, TraceStore
from .unit import DispatchUnits

RECONCILE_PAGE = 1000  # drivers read per transaction by the reconcile pass
FULL_RECONCILE_S = 300.0  # a pass reads every online driver this often; the others, changes
RECONCILE_SLACK_S = 60.0  # how far before the last pass a changes-only pass reads
CHANGE_LOG = 4096  # mirror changes remembered for the position writes that raced them
_CODE = operator.attrgetter("code")
_CLASS = operator.attrgetter("vehicle_class")
_TRIP = operator.attrgetter("trip_id")
_STATUS_CODE = {status: code for code, status in enumerate(DriverStatus)}  # for whole columns
_AVAILABLE = _STATUS_CODE[DriverStatus.available]
_NO_ROWS = np.zeros(0, np.intp)


class DriverEntry:
    """What location ingest needs to know about a driver, without a database round trip.
    `code` is the status's number, kept with it: a tick reads a column of them, and looking
    each status up by the enum's hash (a Python-level call) was 15% of a tick's ingest.
    `version` is the driver row's version this entry mirrors (None: not known)."""

    __slots__ = ("_status", "code", "trip_id", "vehicle_class", "version")

    def __init__(self, status: DriverStatus, vehicle_class: str, trip_id: str | None = None,
                 version: int | None = None) -> None:
        self.status = status
        self.vehicle_class = vehicle_class
        self.trip_id = trip_id
        self.version = version

    @property
    def status(self) -> DriverStatus:
        return self._status

    @status.setter
    def status(self, value: DriverStatus) -> None:
        self._status = value
        self.code = _STATUS_CODE[value]

    def __repr__(self) -> str:
        return (f"DriverEntry({self._status!r}, {self.vehicle_class!r}, {self.trip_id!r}, "
                f"{self.version!r})")


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
        # The row version each driver had when they went offline here: an older change that
        # arrives later (another thread's, another process's event) must not bring them back.
        # An int per driver who was ever online in this process.
        self.gone: dict[str, int] = {}
        # Compare and apply, one change at a time (two threads mirroring the same driver).
        self._mirror_lock = threading.Lock()
        # Every change the mirror applied, numbered: a position write that read its view
        # before a change and wrote after it puts the change back (`writing_positions`).
        self._changes = 0
        self._changed: deque[tuple[int, str]] = deque(maxlen=CHANGE_LOG)
        self._full_at: float | None = None  # when the last full reconcile pass began
        self._pass_at = 0.0  # when the last reconcile pass began

    # --- the memory mirror -------------------------------------------------------------------

    def restore(self) -> int:
        """Load online drivers' states (after a restart); their positions come with their next
        location update."""
        self._full_at = None
        return self.reconcile()

    def reconcile(self) -> int:
        """Re-read drivers from the database: repairs driver events lost while Redis was away.
        A timer pays this pass, never a request. Most passes read only the rows changed
        (`updated_at`) since the pass before, less `RECONCILE_SLACK_S` for the processes'
        clocks and their commits' delays; every `FULL_RECONCILE_S` a pass reads every online
        driver, which also catches what those could not see. Reading every driver every 10 s
        cost each process about 5% of its GIL with 10,000 drivers (py-spy --gil,
        bench/cluster.py), and grows with the fleet. Returns the drivers known online here."""
        now = self.clock.now()
        if self._full_at is None or now - self._full_at >= FULL_RECONCILE_S:
            online = self._reconcile_all()
            self._full_at = self._pass_at = now
            return online
        since, self._pass_at = self._pass_at - RECONCILE_SLACK_S, now
        for page in self._pages(lambda uow, after: uow.drivers.changed_page(
                since, after, RECONCILE_PAGE)):
            self._reconcile_page(page)
        return len(self.entries)

    def _reconcile_all(self) -> int:
        """Every online driver as the database has it. Only drivers known before the pass
        began, and not changed here since, are forgotten, so one who comes online (or changes)
        during it stays."""
        known_before = {d: e.version for d, e in list(self.entries.items())}
        online: set[str] = set()
        for page in self._pages(lambda uow, after: uow.drivers.online_page(
                after, RECONCILE_PAGE)):
            online.update(summary.driver_id for summary in page)
            self._reconcile_page(page)
        for driver_id in known_before.keys() - online:
            with self._mirror_lock:
                entry = self.entries.get(driver_id)
                if entry is not None and entry.version == known_before[driver_id]:
                    self._forget(driver_id, entry.version)
        return len(online)

    def _reconcile_page(self, page: list[DriverSummary]) -> None:
        """Mirror a page's drivers; one known here at the row's version costs a comparison."""
        for summary in page:
            entry = self.entries.get(summary.driver_id)
            if entry is None or entry.version != summary.version:
                self._mirror(summary.driver_id, summary.status, summary.vehicle_class,
                             summary.trip_id, summary.version)

    def _pages(self, read: Callable[[Any, int], list[DriverSummary]]
               ) -> Iterator[list[DriverSummary]]:
        """A reconcile's reads, a page of drivers per read-only transaction, giving the GIL
        up between pages: read whole, 10,000 drivers held it for about 0.5 s
        (bench/cluster.py), and a request behind it waited."""
        after = 0
        while True:
            with self.units(readonly=True) as uow:
                page = read(uow, after)
            yield page
            if len(page) < RECONCILE_PAGE:
                return
            after = int(page[-1].driver_id)
            time.sleep(0)  # let request threads take the GIL between pages

    def _remember(self, st: DriverState) -> None:
        self._mirror(st.driver_id, st.status, st.vehicle_class, st.trip_id, st.version)

    def _mirror(self, driver_id: str, status: DriverStatus, vehicle_class: str | None,
                trip_id: str | None, version: int | None) -> None:
        """The one place the mirror changes: a committed state (a use case's, a database
        read's, another process's event) is applied unless the mirror already holds the row
        at this version or a later one. Two use cases that commit in one order may get here
        in the other; without the check, the earlier commit's state stayed (a driver freed
        by a cancel still mirrored as en_route by the accept it raced, and so never
        offered). None (a version not known) applies as given."""
        with self._mirror_lock:
            entry = self.entries.get(driver_id)
            seen = entry.version if entry is not None else self.gone.get(driver_id)
            if version is not None and seen is not None and version <= seen:
                return
            if status == DriverStatus.offline:
                self._forget(driver_id, version)
                return
            if entry is None:
                if vehicle_class is None:
                    return  # unknown here; entry() loads it from the database on use
                self.entries[driver_id] = DriverEntry(status, vehicle_class, trip_id, version)
                self.gone.pop(driver_id, None)
            else:
                entry.status, entry.trip_id, entry.version = status, trip_id, version
            self._index_as_mirrored(driver_id)

    def _forget(self, driver_id: str, version: int | None) -> None:
        """Offline here (under the mirror lock): out of the mirror and the index."""
        self.entries.pop(driver_id, None)
        if version is not None:
            self.gone[driver_id] = version
        self._index_as_mirrored(driver_id)

    def _index_as_mirrored(self, driver_id: str) -> None:
        """The index's part of a mirror change (under the mirror lock), numbered for
        `writing_positions`: an online driver's availability, an offline one's removal."""
        self._changes += 1
        self._changed.append((self._changes, driver_id))
        entry = self.entries.get(driver_id)
        if entry is None:
            self.index.remove(driver_id)
        else:
            # No position yet (KeyError): the driver joins the index with its first location.
            with contextlib.suppress(KeyError):
                self.index.set_available(driver_id, entry.code == _AVAILABLE)

    @contextlib.contextmanager
    def writing_positions(self, ids: list[str]) -> Iterator[None]:
        """Around reading this process's view of `ids` and writing their positions into the
        index with it (a location post in the embedded mode, a stream entry's apply in the
        scaled one). A status change mirrored in between wrote the index first, and the
        positions' write undid it: a driver who had just been claimed stayed available to
        nearby and dispatch, and one who had gone offline came back to the riders' map until
        the position went stale (30 s). After the write, each driver changed meanwhile is
        written again as mirrored, under the mirror lock. Nothing changed: one comparison."""
        mark = self._changes
        yield
        if self._changes == mark:
            return
        with self._mirror_lock:
            log = self._changed
            if log and log[0][0] <= mark + 1:
                changed = set()
                for seq, driver_id in reversed(log):
                    if seq <= mark:
                        break
                    changed.add(driver_id)
                suspects = changed.intersection(ids)
            else:  # the log no longer reaches back to the mark: every row is a suspect
                suspects = set(ids)
            for driver_id in suspects:
                if driver_id in self.entries or driver_id in self.gone:
                    self._index_as_mirrored(driver_id)

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
            entry = self.entries.get(driver_id)
        return entry

    def _load(self, driver_ids: list[str]) -> None:
        with self.units(readonly=True) as uow:
            states = uow.drivers.many(driver_ids)
        for st in states:
            if st.status != DriverStatus.offline:
                self._remember(st)

    def local_view(self, ids: list[str]) -> tuple[NDArray[np.intp], NDArray[np.bool_],
                                                  list[str], NDArray[np.intp]]:
        """Which of `ids` this process knows (their rows), each one's availability and class
        as this process has them, and the rows of drivers who went offline here: how a
        location stream's entry is applied here. Whole columns: a lookup and two attribute
        reads a row at C speed, where a call per row was two thirds of a tailer's apply
        (1.8 us a row, bench/cluster.py's 500-row entries)."""
        n = len(ids)
        got = list(map(self.entries.get, ids))
        if all(got):
            rows, ents, gone = np.arange(n), got, _NO_ROWS
        else:
            known = np.fromiter(map(bool, got), np.bool_, n)
            rows = np.flatnonzero(known)
            ents = [got[i] for i in rows.tolist()]
            was = self.gone
            gone = np.array([i for i in np.flatnonzero(~known).tolist() if ids[i] in was],
                            np.intp)
        codes = np.fromiter(map(_CODE, ents), np.int8, len(ents))
        return rows, codes == _AVAILABLE, list(map(_CLASS, ents)), gone

    def set_status(self, driver_id: str, status: DriverStatus, trip_id: str | None,
                   version: int) -> None:
        """Mirror a committed status change (the row's `version` after it) here, in the index
        and in the other processes."""
        self._mirror(driver_id, status, None, trip_id, version)
        entry = self.entries.get(driver_id)
        self.events.announce(driver_id, status.value,
                             entry.vehicle_class if entry is not None else None, trip_id,
                             version)

    def apply_event(self, driver_id: str, status: str, vehicle_class: str | None,
                    trip_id: str | None, version: int | None = None) -> None:
        """Another process committed a status change: mirror it (the database stays the truth;
        dispatch re-checks it before offering)."""
        self._mirror(driver_id, DriverStatus(status), vehicle_class, trip_id, version)

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
        self.events.announce(driver_id, st.status.value, st.vehicle_class, st.trip_id,
                             st.version)
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
        self.events.announce(driver_id, st.status.value, st.vehicle_class, None, st.version)
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
        """A fleet gateway's batch as rows of (driver, lat, lng, ts or None): the valid rows of
        online drivers are applied, the others are reported with a reason."""
        if not rows:
            return 0, []
        ids, lats, lngs, tss = zip(*rows, strict=True)
        return self.update_location_columns(list(ids), list(lats), list(lngs), list(tss))

    def update_location_columns(self, ids: list[str], lats: Sequence[float] | NDArray[Any],
                                lngs: Sequence[float] | NDArray[Any],
                                ts: float | Sequence[float | None] | None
                                ) -> tuple[int, list[dict[str, object]]]:
        """The same batch as columns (a simulated fleet's tick): one time for every row (None:
        now) or one per row. The rules are applied to whole columns, so a row costs a few
        dictionary lookups rather than a loop of appends; rows refused come back in row
        order within each rule (offline or too old, then out of order, then a bad field)."""
        # The rows' statuses are read, then written to the index by the post: a change
        # mirrored in between is written again after it.
        with self.writing_positions(ids):
            return self._post_locations(ids, lats, lngs, ts)

    def _post_locations(self, ids: list[str], lats: Sequence[float] | NDArray[Any],
                        lngs: Sequence[float] | NDArray[Any],
                        ts: float | Sequence[float | None] | None
                        ) -> tuple[int, list[dict[str, object]]]:
        n = len(ids)
        rejected: list[dict[str, object]] = []
        if n == 0:
            return 0, rejected
        now = self.clock.now()
        entries = self.entries
        got = list(map(entries.get, ids))
        # An entry is always true, so all() finds a None at C speed (a set of the batch's ids
        # cost a tick more than twice the lookups themselves).
        unknown = not all(got)
        if unknown:  # drivers this process does not know yet: one read for all of them
            self._load(sorted({d for d, e in zip(ids, got, strict=True) if e is None}))
            got = list(map(entries.get, ids))
        t, stamped = _times(ts, n, now)
        ttl = self.index.ttl_s
        known = np.fromiter((e is not None for e in got), np.bool_, n) if unknown \
            else np.ones(n, np.bool_)
        ok = known & ~(t < now - ttl)
        if not ok.all():
            for i in np.flatnonzero(~ok).tolist():
                if not known[i]:
                    rejected.append({"index": i, "driver_id": ids[i], "reason": "offline"})
                else:
                    rejected.append({"index": i, "driver_id": ids[i], "field": "ts",
                                     "reason": ts_refusal(float(t[i]), now, ttl, None)})
        keep = np.flatnonzero(ok)
        if not keep.shape[0]:
            return 0, rejected
        ents = pick(got, keep, n)
        status = np.fromiter(map(_CODE, ents), np.int8, len(ents))
        out = FeedRows(ids=pick(ids, keep, n), lats=pick(lats, keep, n),
                       lngs=pick(lngs, keep, n),
                       available=status == _AVAILABLE,
                       classes=list(map(_CLASS, ents)), ts=t[keep])
        # The order against each driver's last accepted time, advanced atomically by the feed
        # (a row older than its driver's last is refused), and the rows not older published.
        prev, result = self.feed.post(out, stamped[keep])
        older = out.ts < prev  # NaN (no last time) is never newer
        for k in np.flatnonzero(older).tolist():
            i = int(keep[k])
            rejected.append({"index": i, "driver_id": ids[i], "field": "ts",
                             "reason": ts_refusal(float(t[i]), now, ttl, float(prev[k]))})
        for row, field_, reason in result.rejected:
            rejected.append({"index": int(keep[row]), "driver_id": out.ids[row],
                             "field": field_, "reason": reason})
        # The meter's trace takes the accepted points of drivers on a trip only.
        riding = (status == _STATUS_CODE[DriverStatus.on_trip]) & ~older
        riding[[row for row, _f, _r in result.rejected]] = False
        at = np.flatnonzero(riding)
        if at.shape[0]:
            trips = list(map(_TRIP, map(ents.__getitem__, at.tolist())))
            self.traces.add(trips, np.column_stack(
                [np.asarray(pick(col, at, len(ents)), np.float64)
                 for col in (out.ts, out.lats, out.lngs)]))
        return result.applied, rejected


def _times(ts: float | Sequence[float | None] | None, n: int, now: float
           ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The rows' times, and which of them the server stamped (`now`: the row gave none)."""
    if ts is None or isinstance(ts, int | float):
        return np.full(n, now if ts is None else float(ts)), np.full(n, ts is None)
    given = list(ts)
    if len(given) != n:
        raise ValueError(f"ts: length {len(given)} does not match the driver ids ({n})")
    stamped = np.fromiter((v is None for v in given), np.bool_, n)
    return np.array([now if v is None else v for v in given], np.float64), stamped


def changed_concurrently(driver_id: str) -> DriverBusy:
    # A concurrent status change (a double tap, an offer expiring, another process) won the
    # compare-and-set: a 409 the app retries, never a 500.
    return DriverBusy(f"driver {driver_id}'s status changed concurrently; retry")
