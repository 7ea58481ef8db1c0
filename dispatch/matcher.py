"""Matching: trip requests, candidate search and ranking, offers with deadlines, accept, reject
and expiry. Claims are compare-and-set writes in one transaction, so the invariants hold across
threads and processes: a driver gets at most one pending offer and one live trip, an offer is
accepted at most once, by its driver, before its deadline."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from geoindex import GeoIndex, Neighbor
from ridehail.kernel.channel import Channel
from ridehail.kernel.clock import Clock
from ridehail.kernel.errors import Conflict
from trips.access import may_view
from trips.area import ServiceArea
from trips.billing import blocking_payment
from trips.fares import FareBreakdown, Tariff
from trips.model import PaymentRequired, Trip, TripNotFound, TripState
from trips.pricing import quote

from .clock import Timers
from .drivers import DriverDirectory
from .eta import EtaModel
from .metrics import (
    DISPATCH_LATENCY,
    OFFERS_ACCEPTED,
    OFFERS_EXPIRED,
    OFFERS_MADE,
    OFFERS_REJECTED,
)
from .model import (
    DispatchRecord,
    DriverStatus,
    Offer,
    OfferClosed,
    OfferNotFound,
    OfferState,
    OutsideServiceArea,
    RiderBusy,
)
from .offers import save_record
from .ports import Announcing, Hooks
from .supply import Supply
from .unit import DispatchUnit, DispatchUnits

Ranked = list[tuple[float, Neighbor]]


@dataclass
class DispatchConfig:
    offer_timeout_s: float = 15.0
    radius_m: float = 5000.0
    radius_steps: tuple[float, ...] = (0.3, 0.6, 1.0)  # fractions of radius_m, tried in turn
    max_candidates: int = 10
    policy: str = "greedy"
    batch_window_s: float = 2.0
    # The batched policy against long pickups where supply is tight (dispatch/batching.py).
    batch_hold_s: float = 0.0  # an unmatched trip waits for later windows, up to this long
    batch_eta_cap_s: float = 0.0  # 0: no cap; else the longest pickup ETA of a new request,
    batch_eta_cap_growth: float = 1.0  # ... growing by this many seconds per second waited
    batch_forward_s: float = 0.0  # drivers this close to their dropoff are candidates too
    surge_resolution: int = 7
    supply_refresh_s: float = 5.0


class Claimed(NamedTuple):
    """A claim that made an offer: the offer, and the driver row's version after the claim
    (the directory's mirror orders a driver's changes by it)."""

    offer: Offer
    driver_version: int


class _Lost(Exception):
    """A claim lost its race after writing: the unit is abandoned (rolled back) and dispatch
    tries again."""


class Matcher:
    def __init__(self, units: DispatchUnits, index: GeoIndex, drivers: DriverDirectory, *,
                 new_id: Callable[[], str], clock: Clock, timers: Timers,
                 channel: Channel, trip_channel: Channel, eta: EtaModel, config: DispatchConfig,
                 service_area: ServiceArea | None, tariff: Tariff, supply: Supply,
                 hooks: Hooks, driver_rating: dict[str, float],
                 announcing: Announcing = contextlib.nullcontext) -> None:
        self.units = units
        self.index = index
        self.drivers = drivers
        self.new_id = new_id
        self.clock = clock
        self.timers = timers
        self.channel = channel
        self.trip_channel = trip_channel
        self.eta = eta
        self.config = config
        self.service_area = service_area
        self.tariff = tariff
        self.supply = supply
        self.hooks = hooks
        self.driver_rating = driver_rating
        self.announcing = announcing

    # --- requests ------------------------------------------------------------------------------

    def open_trip(self, rider_id: str, pickup: tuple[float, float],
                  dropoff: tuple[float, float], vehicle_class: str = "standard") -> Trip:
        """Store a new trip and its dispatch record in one transaction, unmatched (the batched
        policy matches it with its window); `_new_trip` and `_add_trip` say whether this
        rider may request it and at what price."""
        return self._open(self._new_trip(rider_id, pickup, dropoff, vehicle_class))

    def request(self, rider_id: str, pickup: tuple[float, float],
                dropoff: tuple[float, float], vehicle_class: str = "standard") -> Trip:
        """`open_trip` and the trip's first dispatch in one transaction: the trip is committed
        already offered (or ended no_driver_found), so nobody (a cancel, another process's
        dispatch) ever sees it between the two, and it costs one commit and no re-reads of the
        trip, its offers and its record (on PostgreSQL 4 round trips instead of 15, pinned by
        tests/dispatch/test_request_round_trips.py).

        A driver the claim finds unavailable is skipped (nothing written); a claim whose offer
        then loses (`_Lost`) rolls the unit back, trip and all, and the request takes the two
        steps: open the trip, then `dispatch_and_read` without that driver."""
        trip = self._new_trip(rider_id, pickup, dropoff, vehicle_class)
        now = trip.requested_at
        started = time.perf_counter()
        lost: set[str] = set()
        try:
            with self.units() as uow:
                record = DispatchRecord(trip.id, now)
                ranked = self.candidates(trip, set(), record)
                claimed = self._claim_first(uow, trip.id, ranked, record, lost, now,
                                            new_record=True, new_trip=trip)
                if claimed is None:
                    self._unmatched(trip, record, now)
                    uow.trips.save(trip)  # inserted by this unit: no concurrent writer
                    uow.records.add(record)
                uow.commit()
        except _Lost:
            self._open(trip)
            _offer, seen = self.dispatch_and_read(trip.id, lost=lost)
            return seen or self.get_trip(trip.id)
        with self.announcing():  # the demand, the driver's status, the wake-up: one send
            self._demand(trip)
            self._dispatched(trip, claimed, started)
        return trip

    def _new_trip(self, rider_id: str, pickup: tuple[float, float],
                  dropoff: tuple[float, float], vehicle_class: str) -> Trip:
        """The trip a request would open now, at the upfront quote with the surge locked in
        (`quote` refuses an end outside the service area)."""
        now = self.clock.now()
        fare = self.quote(pickup, dropoff, now)
        return Trip(
            id=self.new_id(), rider_id=rider_id, vehicle_class=vehicle_class,
            pickup_lat=pickup[0], pickup_lng=pickup[1],
            dropoff_lat=dropoff[0], dropoff_lng=dropoff[1], requested_at=now,
            currency=fare.currency, fare_estimate=fare.total, surge=str(fare.surge_multiplier),
            quote_duration_s=fare.duration_s, quote_distance_m=fare.distance_m,
        )

    @classmethod
    def _add_trip(cls, uow: DispatchUnit, trip: Trip) -> None:
        """May this rider open a trip: no failed payment (402), no open trip of theirs (the
        unique rule uq_trips_open_rider). The trip's insert checks both in its one round
        trip (`TripRepository.open`, or with the claim of its driver, `_claim_first`); only a
        refusal reads which it was (`_refused`)."""
        if not uow.trips.open(trip):
            cls._refused(uow, trip)

    @staticmethod
    def _refused(uow: DispatchUnit, trip: Trip) -> None:
        """The insert refused `trip`: raise why, or add it if the refusal is gone by now."""
        failed = blocking_payment(uow, trip.rider_id)
        if failed is not None:
            raise PaymentRequired(failed.trip_id, failed.last_error)
        try:  # settled since the insert's check: only the open-trip rule can refuse it now
            uow.trips.add(trip)
        except Conflict:
            raise RiderBusy(f"rider {trip.rider_id} already has an open trip") from None

    def _open(self, trip: Trip) -> Trip:
        with self.units() as uow:
            self._add_trip(uow, trip)
            uow.records.add(DispatchRecord(trip.id, trip.requested_at))
            uow.commit()
        self._demand(trip)
        return trip

    def _demand(self, trip: Trip) -> None:
        # Only a request that was accepted counts as demand for surge.
        self.supply.record_request(trip.pickup_lat, trip.pickup_lng, trip.requested_at)

    def quote(self, pickup: tuple[float, float], dropoff: tuple[float, float],
              when: float | None = None) -> FareBreakdown:
        """The upfront fare a request from `pickup` to `dropoff` would get at `when` (now),
        with the surge there, priced on the travel-time model's route: both ends inside the
        service area (`OutsideServiceArea` names the end that is not). A request locks its own
        quote in; this one only informs."""
        if self.service_area is not None:
            for name, (lat, lng) in (("pickup", pickup), ("dropoff", dropoff)):
                if not self.service_area.contains(lat, lng):
                    raise OutsideServiceArea(name)
        when = self.clock.now() if when is None else when
        return quote(self.tariff, pickup, dropoff, self.supply.surge_at(*pickup),
                     self.route(pickup, dropoff, when))

    def route(self, pickup: tuple[float, float], dropoff: tuple[float, float],
              requested_at: float) -> tuple[float, float]:
        """(seconds, road metres) the upfront fare is priced on (the trip keeps it)."""
        return self.eta.travel(pickup[0], pickup[1], dropoff[0], dropoff[1], requested_at)

    def get_trip(self, trip_id: str) -> Trip:
        with self.units(readonly=True) as uow:
            trip = uow.trips.get(trip_id)
        if trip is None:
            raise TripNotFound(trip_id)
        return trip

    def trip_for(self, trip_id: str, role: str, account_id: str) -> Trip:
        """The trip if this account may view it (`trips.access.may_view`); else TripNotFound,
        as if it did not exist."""
        now = self.clock.now()
        with self.units(readonly=True) as uow:
            trip = uow.trips.get(trip_id)
            if trip is None:
                raise TripNotFound(trip_id)
            pending = role == "driver" and trip.driver_id != account_id and any(
                o.trip_id == trip_id and o.state == OfferState.pending and o.deadline > now
                for o in uow.offers.pending_for_driver(account_id))
        if not may_view(trip, role, account_id, offer_pending=pending):
            raise TripNotFound(trip_id)
        return trip

    # --- candidates --------------------------------------------------------------------------

    def candidates(self, trip: Trip, exclude: set[str], record: DispatchRecord) -> Ranked:
        """k nearest available drivers of the trip's class, the radius growing step by step
        until some untried driver is found; ranked by pickup ETA (30 s bands, the better
        rating first within a band), then distance, then id."""
        snap = self.index.snapshot()
        now = self.clock.now()
        k = self.config.max_candidates + len(exclude)
        found: list[Neighbor] = []
        for step in self.config.radius_steps:
            radius = self.config.radius_m * step
            explain = snap.explain_nearest(trip.pickup_lat, trip.pickup_lng, k=k,
                                           radius_m=radius, vehicle_class=trip.vehicle_class,
                                           now=now)
            found = [n for n in explain.neighbors if n.driver_id not in exclude]
            record.log(
                "search", now, radius_m=radius, snapshot=snap.version,
                candidates=[{"driver_id": n.driver_id, "distance_m": round(n.distance_m, 1)}
                            for n in found],
                filtered={r: ids[:20] for r, ids in explain.filtered_ids.items()},
                filtered_counts=dict(explain.filtered_counts),
                excluded=sorted(exclude)[:20], rings=explain.rings_searched,
                examined=explain.candidates_examined,
            )
            if found:
                break
        return self._rank(trip, found, now)

    def candidates_many(self, trips: list[tuple[Trip, set[str], DispatchRecord]]
                        ) -> dict[str, Ranked]:
        """`candidates` for a batch of trips, from one columnar index query per vehicle class
        and radius step (`Snapshot.nearest_many_arrays`) instead of one search per trip. The
        record logs each search's candidates (the filter details are the single search's)."""
        snap = self.index.snapshot()
        now = self.clock.now()
        out: dict[str, Ranked] = {}
        by_class: dict[str, list[tuple[Trip, set[str], DispatchRecord]]] = {}
        for item in trips:
            by_class.setdefault(item[0].vehicle_class, []).append(item)
        for vclass, waiting in by_class.items():
            for step in self.config.radius_steps:
                if not waiting:
                    break
                radius = self.config.radius_m * step
                k = self.config.max_candidates + max(len(ex) for _, ex, _ in waiting)
                cols = snap.nearest_many_arrays([t.pickup_lat for t, _, _ in waiting],
                                                [t.pickup_lng for t, _, _ in waiting], k=k,
                                                radius_m=radius, vehicle_class=vclass, now=now)
                rows = cols.neighbors()
                left = []
                for (trip, exclude, record), near in zip(waiting, rows, strict=True):
                    found = [n for n in near if n.driver_id not in exclude]
                    record.log("search", now, radius_m=radius, snapshot=snap.version,
                               candidates=[{"driver_id": n.driver_id,
                                            "distance_m": round(n.distance_m, 1)}
                                           for n in found],
                               excluded=sorted(exclude)[:20], batched=True)
                    if found or step == self.config.radius_steps[-1]:
                        out[trip.id] = self._rank(trip, found, now)
                    else:
                        left.append((trip, exclude, record))
                waiting = left
        return {t.id: out[t.id] for t, _, _ in trips if t.id in out}  # in the batch's order

    def _rank(self, trip: Trip, found: list[Neighbor], now: float) -> Ranked:
        etas = self.eta.pickup_etas([n.lat for n in found], [n.lng for n in found],
                                    trip.pickup_lat, trip.pickup_lng, now)
        ranked = list(zip(etas, found, strict=True))
        # Pickup times within the same 30 s band are a tie for the rider; the better-rated
        # driver wins it (unrated drivers count as 4.5, neither favoured nor punished).
        rating = self.driver_rating
        ranked.sort(key=lambda p: (round(p[0] / 30), -rating.get(p[1].driver_id, 4.5), p[0],
                                   p[1].distance_m, p[1].driver_id))
        return ranked[: self.config.max_candidates]

    def nearby(self, lat: float, lng: float, radius_m: float, limit: int,
               vehicle_class: str | None = None) -> list[tuple[Neighbor, float]]:
        snap = self.index.snapshot()
        now = self.clock.now()
        found = snap.nearest(lat, lng, k=limit, radius_m=radius_m, available_only=True,
                             vehicle_class=vehicle_class, now=now)
        etas = self.eta.pickup_etas([n.lat for n in found], [n.lng for n in found], lat, lng, now)
        return list(zip(found, etas, strict=True))

    # --- offers ------------------------------------------------------------------------------

    def dispatch(self, trip_id: str, only: Ranked | None = None) -> Offer | None:
        """Offer the trip to the best untried candidate; none left ends it no_driver_found.

        A claim that loses a race (another process offered that driver, or this trip, first)
        abandons the whole unit of work and tries again without that driver, so no half-made
        claim is ever committed."""
        return self.dispatch_and_read(trip_id, only)[0]

    def dispatch_and_read(self, trip_id: str, only: Ranked | None = None,
                          lost: set[str] | None = None) -> tuple[Offer | None, Trip | None]:
        """`dispatch`, and the trip as that dispatch left it (None: it was not there), so a
        new request answers without reading the trip again. `lost`: drivers whose claim
        already lost a race, not tried again."""
        lost = set() if lost is None else lost
        for _attempt in range(5):
            try:
                return self._dispatch_once(trip_id, only, lost)
            except _Lost:
                continue
        return None, None

    def _dispatch_once(self, trip_id: str, only: Ranked | None, lost: set[str]
                       ) -> tuple[Offer | None, Trip | None]:
        now = self.clock.now()
        started = time.perf_counter()
        with self.units() as uow:
            trip = uow.trips.get(trip_id)
            if trip is None or trip.state != TripState.requested:
                return None, trip
            if uow.offers.pending_for_trip(trip_id) is not None:
                return None, trip  # another dispatch of this trip is waiting on a driver
            stored = uow.records.get(trip_id)
            record = stored or DispatchRecord(trip_id, now)
            exclude = record.tried_drivers() | set(trip.rejected_drivers) | lost
            ranked = only if only is not None else self.candidates(trip, exclude, record)
            claimed = self._claim_first(uow, trip_id, ranked, record, lost, now,
                                        new_record=stored is None)
            if claimed is not None:
                if stored is not None:
                    uow.records.save(record)
            else:
                self._unmatched(trip, record, now)
                try:
                    uow.trips.save(trip)
                    save_record(uow, record, new=stored is None)
                except Conflict:
                    return None, None  # the trip changed meanwhile (cancelled, matched elsewhere)
            uow.commit()
        self._dispatched(trip, claimed, started)
        return None if claimed is None else claimed.offer, trip

    @staticmethod
    def _unmatched(trip: Trip, record: DispatchRecord, now: float) -> None:
        trip.no_driver(now)
        record.log("no_driver_found", now)
        record.outcome = "no_driver_found"

    def _dispatched(self, trip: Trip, claimed: Claimed | None, started: float) -> None:
        """After a dispatch committed: the offer's wake-up and deadline, or the trip's end."""
        if claimed is not None:
            self._after_offer(*claimed)
            DISPATCH_LATENCY.labels("offered").observe(time.perf_counter() - started)
            return
        DISPATCH_LATENCY.labels("no_driver").observe(time.perf_counter() - started)
        self.trip_changed(trip)
        self.hooks.trip_finished(trip.id, TripState.no_driver_found.value)

    def _claim_first(self, uow: DispatchUnit, trip_id: str, ranked: Ranked,
                     record: DispatchRecord, lost: set[str], now: float, *,
                     new_record: bool, new_trip: Trip | None = None) -> Claimed | None:
        """Claim the first candidate still available: the driver goes `offered` in one
        statement over all the candidates (`claim_first`), then a pending offer is added; the
        offer, with the driver row's version after the claim. Each candidate before the
        claimed one is logged skipped with the reason the claim found (nothing was written,
        the unit goes on); raises _Lost when the offer lost after the driver's write (a
        pending offer of this trip or this driver won: the unit must not commit). With
        `new_record` (the trip has none stored) the record, complete, is inserted with the
        offer when there is one; the caller stores it otherwise. With `new_trip` (a request's
        trip, not stored yet) the trip is opened first (`_add_trip`'s rules), on PostgreSQL
        in the claim's statement (`open_and_claim_first`): one round trip fewer."""
        ranks = {cand.driver_id: (rank, eta_s, cand) for rank, (eta_s, cand) in enumerate(ranked)
                 if cand.driver_id not in lost}
        if not ranks:
            if new_trip is not None:
                self._add_trip(uow, new_trip)
            return None
        if new_trip is None:
            claim = uow.drivers.claim_first(list(ranks), trip_id, now)
        else:
            opened = uow.drivers.open_and_claim_first(new_trip, list(ranks), now)
            if opened is None:  # refused, nothing claimed: why, or in after all
                self._refused(uow, new_trip)
                opened = uow.drivers.claim_first(list(ranks), trip_id, now)
            claim = opened
        for driver_id, why_not in claim.skipped:
            if why_not == "claimed":  # a concurrent claim won: not this dispatch's again
                lost.add(driver_id)
            record.log("skipped", now, driver_id=driver_id, reason=why_not)
        if claim.driver_id is None or claim.version is None:
            return None
        rank, eta_s, cand = ranks[claim.driver_id]
        offer = Offer(self.new_id(), trip_id, cand.driver_id, now,
                      now + self.config.offer_timeout_s, rank,
                      round(cand.distance_m, 1), round(eta_s, 1))
        record.log("offered", now, driver_id=cand.driver_id, offer_id=offer.id,
                   rank=rank, eta_s=round(eta_s, 1), distance_m=offer.distance_m)
        try:
            uow.offers.add(offer, record if new_record else None)
        except Conflict:
            lost.add(cand.driver_id)
            raise _Lost from None  # leaving the unit uncommitted rolls the claim back
        return Claimed(offer, claim.version)

    def _after_offer(self, offer: Offer, driver_version: int) -> None:
        self.drivers.set_status(offer.driver_id, DriverStatus.offered, offer.trip_id,
                                driver_version)
        # A wake-up only: long-polls and WebSockets read the pending offers from the database.
        self.channel.publish(offer.driver_id, {"type": "offer", "offer_id": offer.id,
                                               "trip_id": offer.trip_id})
        self.timers.call_at(offer.deadline, lambda: self.expire_offer(offer.id))
        OFFERS_MADE.inc()
        self.hooks.offer_made(offer)

    def pending_offers(self, driver_id: str) -> list[Offer]:
        return [offer for offer, _trip in self.offers_with_trips(driver_id)]

    def offers_with_trips(self, driver_id: str) -> list[tuple[Offer, Trip]]:
        """The driver's pending offers before their deadline, each with its trip, read in one
        unit of work."""
        now = self.clock.now()
        out: list[tuple[Offer, Trip]] = []
        with self.units(readonly=True) as uow:
            for offer in uow.offers.pending_for_driver(driver_id):
                if offer.deadline <= now:
                    continue
                trip = uow.trips.get(offer.trip_id)
                if trip is not None:
                    out.append((offer, trip))
        return out

    def accept_offer(self, offer_id: str, driver_id: str) -> Trip:
        now = self.clock.now()
        with self.units() as uow:
            offer = uow.offers.get(offer_id)
            if offer is None or offer.driver_id != driver_id:
                raise OfferNotFound(offer_id)
            if offer.state == OfferState.pending and now >= offer.deadline:
                raise OfferClosed(f"offer {offer_id} expired at its deadline")
            offer.close(OfferState.accepted, now)
            trip = uow.trips.get(offer.trip_id)
            st = uow.drivers.get(driver_id)
            if trip is None or st is None:
                raise OfferNotFound(offer_id)
            trip.assign(driver_id, now)
            st.status = DriverStatus.en_route
            st.trip_id = trip.id
            st.updated_at = now
            try:
                uow.offers.save(offer)
                uow.trips.save(trip)
                uow.drivers.save(st)
            except Conflict:
                raise OfferClosed(f"offer {offer_id} was answered concurrently") from None
            uow.records.append(trip.id, now, DispatchRecord.entry(
                "accepted", now, driver_id=driver_id, offer_id=offer_id), outcome="assigned")
            uow.commit()
        OFFERS_ACCEPTED.inc()
        with self.announcing():  # the driver's status and the trip's wake-up: one send
            self.drivers.set_status(driver_id, DriverStatus.en_route, trip.id, st.version)
            self.trip_changed(trip)
        return trip

    def trip_changed(self, trip: Trip) -> None:
        """After a trip's change committed: wake whoever follows it (its rider's event
        streams, in any process). A wake-up only: they read the trip again."""
        self.trip_channel.publish(trip.id, {"type": "trip", "trip_id": trip.id,
                                            "state": trip.state.value})

    def reject_offer(self, offer_id: str, driver_id: str) -> Offer:
        offer = self._close_offer(offer_id, OfferState.rejected, driver_id=driver_id)
        self.dispatch(offer.trip_id)
        return offer

    def expire_offer(self, offer_id: str) -> None:
        """The deadline passed (a timer, or the sweep): free the driver, try the next one."""
        try:
            offer = self._close_offer(offer_id, OfferState.expired)
        except (OfferClosed, OfferNotFound):
            return  # answered in time, or expired by another process: fires once
        self.dispatch(offer.trip_id)

    def sweep_expired(self, limit: int = 100) -> int:
        """Expire pending offers past their deadline: catches timers lost with a process."""
        now = self.clock.now()
        with self.units(readonly=True) as uow:
            due = uow.offers.expired_pending(now, limit)
        for offer in due:
            self.expire_offer(offer.id)
        return len(due)

    def _close_offer(self, offer_id: str, state: OfferState,
                     driver_id: str | None = None) -> Offer:
        now = self.clock.now()
        with self.units() as uow:
            offer = uow.offers.get(offer_id)
            if offer is None or (driver_id is not None and offer.driver_id != driver_id):
                raise OfferNotFound(offer_id)
            if state == OfferState.expired and now < offer.deadline:
                raise OfferClosed(f"offer {offer_id} is not due yet")
            if state == OfferState.rejected and now >= offer.deadline \
                    and offer.state == OfferState.pending:
                state = OfferState.expired
            offer.close(state, now)
            try:
                uow.offers.save(offer)
            except Conflict:
                raise OfferClosed(f"offer {offer_id} was answered concurrently") from None
            # The driver goes available only if still offered this trip, in one statement (as
            # a cancel's release): a driver whose row moved on meanwhile stays as they are.
            freed = uow.drivers.release(offer.driver_id, offer.trip_id, now,
                                        status=DriverStatus.offered)
            uow.records.append(offer.trip_id, now, DispatchRecord.entry(
                state.value, now, driver_id=offer.driver_id, offer_id=offer.id))
            uow.commit()
        (OFFERS_EXPIRED if state == OfferState.expired else OFFERS_REJECTED).inc()
        if freed is not None:
            self.drivers.set_status(offer.driver_id, DriverStatus.available, None, freed)
        return offer
