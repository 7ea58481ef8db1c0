"""Matching: trip requests, candidate search and ranking, offers with deadlines, accept,
reject and expiry. Claims are compare-and-set writes in one transaction, so the invariants hold
across threads and processes: a driver gets at most one pending offer and one live trip, an
offer is accepted at most once, by its driver, before its deadline."""

from __future__ import annotations

import contextlib
from typing import Any

from geoindex import Neighbor
from ridehail.kernel.errors import Conflict
from trips.fares import estimate_fare
from trips.model import Trip, TripNotFound, TripState

from .base import EngineBase
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

_RETRY = object()


class Matching(EngineBase):
    def request_trip(self, rider_id: str, pickup: tuple[float, float],
                     dropoff: tuple[float, float], vehicle_class: str = "standard") -> Trip:
        if self.service_area is not None:
            for name, (lat, lng) in (("pickup", pickup), ("dropoff", dropoff)):
                if not self.service_area.contains(lat, lng):
                    raise OutsideServiceArea(name)
        now = self.clock.now()
        surge = self.surge_at(*pickup)
        if self.surge is not None:
            self.surge.record_request(pickup[0], pickup[1], now)
        fare = estimate_fare(self.tariff, pickup, dropoff, surge=surge)
        trip = Trip(
            id=self.new_id(), rider_id=rider_id, vehicle_class=vehicle_class,
            pickup_lat=pickup[0], pickup_lng=pickup[1],
            dropoff_lat=dropoff[0], dropoff_lng=dropoff[1], requested_at=now,
            currency=fare.currency, fare_estimate=fare.total, surge=str(surge),
        )
        with self.uow_factory() as uow:
            if uow.trips.open_for_rider(rider_id) is not None:
                raise RiderBusy(f"rider {rider_id} already has an open trip")
            try:
                uow.trips.add(trip)
            except Conflict:
                raise RiderBusy(f"rider {rider_id} already has an open trip") from None
            uow.records.add(DispatchRecord(trip.id, now))
            uow.commit()
        if self.config.policy == "batched":
            self.enqueue_batch(trip.id)
        else:
            self.dispatch(trip.id)
        return self.get_trip(trip.id)

    def get_trip(self, trip_id: str) -> Trip:
        with self.uow_factory(readonly=True) as uow:
            trip = uow.trips.get(trip_id)
        if trip is None:
            raise TripNotFound(trip_id)
        return trip

    # --- candidates ------------------------------------------------------------------------

    def candidates(self, trip: Trip, exclude: set[str],
                   record: DispatchRecord) -> list[tuple[float, Neighbor]]:
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
        ranked = [(self.eta.pickup_eta_s(n.distance_m, n.lat, n.lng, trip.pickup_lat,
                                         trip.pickup_lng), n) for n in found]
        # Pickup times within the same 30 s band are a tie for the rider; the better-rated
        # driver wins it (unrated drivers count as 4.5, neither favoured nor punished).
        rating = self.driver_rating
        ranked.sort(key=lambda p: (round(p[0] / 30), -rating.get(p[1].driver_id, 4.5), p[0],
                                   p[1].distance_m, p[1].driver_id))
        return ranked[: self.config.max_candidates]

    def dispatch(self, trip_id: str, only: list[tuple[float, Neighbor]] | None = None
                 ) -> Offer | None:
        """Offer the trip to the best untried candidate; none left ends it no_driver_found.

        A claim that loses a race (another process offered that driver, or this trip, first)
        abandons the whole unit of work and tries again without that driver, so no half-made
        claim is ever committed."""
        lost: set[str] = set()
        for _attempt in range(5):
            outcome = self._dispatch_once(trip_id, only, lost)
            if outcome is not _RETRY:
                return outcome  # type: ignore[return-value]
        return None

    def _dispatch_once(self, trip_id: str, only: list[tuple[float, Neighbor]] | None,
                       lost: set[str]) -> Offer | None | object:
        now = self.clock.now()
        with self.uow_factory() as uow:
            trip = uow.trips.get(trip_id)
            if trip is None or trip.state != TripState.requested:
                return None
            if uow.offers.pending_for_trip(trip_id) is not None:
                return None  # another dispatch of this trip is already waiting on a driver
            record = uow.records.get(trip_id) or DispatchRecord(trip_id, now)
            exclude = record.tried_drivers() | set(trip.rejected_drivers) | lost
            ranked = only if only is not None else self.candidates(trip, exclude, record)
            for rank, (eta_s, cand) in enumerate(ranked):
                if cand.driver_id in lost:
                    continue
                st = uow.drivers.get(cand.driver_id)
                if st is None or st.status != DriverStatus.available:
                    record.log("skipped", now, driver_id=cand.driver_id,
                               reason=st.status.value if st else "unknown")
                    continue
                st.status = DriverStatus.offered
                st.trip_id = trip_id
                st.updated_at = now
                offer = Offer(self.new_id(), trip_id, cand.driver_id, now,
                              now + self.config.offer_timeout_s, rank,
                              round(cand.distance_m, 1), round(eta_s, 1))
                try:
                    uow.drivers.save(st)
                    uow.offers.add(offer)
                except Conflict:
                    lost.add(cand.driver_id)
                    return _RETRY  # leaving the unit uncommitted rolls the claim back
                record.log("offered", now, driver_id=cand.driver_id, offer_id=offer.id,
                           rank=rank, eta_s=round(eta_s, 1), distance_m=offer.distance_m)
                self._save_record(uow, record)
                uow.commit()
                self._after_offer(offer)
                return offer
            trip.no_driver(now)
            record.log("no_driver_found", now)
            record.outcome = "no_driver_found"
            try:
                uow.trips.save(trip)
                self._save_record(uow, record)
            except Conflict:
                return None  # the trip changed meanwhile (cancelled, or matched elsewhere)
            uow.commit()
        self.hooks.trip_finished(trip_id, TripState.no_driver_found.value)
        return None

    def _save_record(self, uow: Any, record: DispatchRecord) -> None:
        if record.version == 0 and uow.records.get(record.trip_id) is None:
            uow.records.add(record)
        else:
            uow.records.save(record)

    def _after_offer(self, offer: Offer) -> None:
        self.directory_set(offer.driver_id, DriverStatus.offered, offer.trip_id)
        # A wake-up only: long-polls and WebSockets read the pending offers from the database.
        self.channel.publish(offer.driver_id, {"type": "offer", "offer_id": offer.id,
                                               "trip_id": offer.trip_id})
        self.timers.call_at(offer.deadline, lambda: self.expire_offer(offer.id))
        self.hooks.offer_made(offer)

    def directory_set(self, driver_id: str, status: DriverStatus,
                      trip_id: str | None) -> None:
        entry = self.directory.get(driver_id)
        if entry is not None:
            entry.status = status
            entry.trip_id = trip_id
        with contextlib.suppress(KeyError):
            self.index.set_available(driver_id, status == DriverStatus.available)
        # Other API processes mirror the change (a no-op in the embedded mode).
        self.events.announce(driver_id, status.value,
                             entry.vehicle_class if entry is not None else None, trip_id)

    # --- answers ---------------------------------------------------------------------------

    def pending_offers(self, driver_id: str) -> list[Offer]:
        now = self.clock.now()
        with self.uow_factory(readonly=True) as uow:
            return [o for o in uow.offers.pending_for_driver(driver_id) if o.deadline > now]

    def accept_offer(self, offer_id: str, driver_id: str) -> Trip:
        now = self.clock.now()
        with self.uow_factory() as uow:
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
            record = uow.records.get(trip.id) or DispatchRecord(trip.id, now)
            record.log("accepted", now, driver_id=driver_id, offer_id=offer_id)
            record.outcome = "assigned"
            try:
                uow.offers.save(offer)
                uow.trips.save(trip)
                uow.drivers.save(st)
            except Conflict:
                raise OfferClosed(f"offer {offer_id} was answered concurrently") from None
            self._save_record(uow, record)
            uow.commit()
        self.directory_set(driver_id, DriverStatus.en_route, trip.id)
        return trip

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
        with self.uow_factory(readonly=True) as uow:
            due = uow.offers.expired_pending(now, limit)
        for offer in due:
            self.expire_offer(offer.id)
        return len(due)

    def _close_offer(self, offer_id: str, state: OfferState,
                     driver_id: str | None = None) -> Offer:
        now = self.clock.now()
        with self.uow_factory() as uow:
            offer = uow.offers.get(offer_id)
            if offer is None or (driver_id is not None and offer.driver_id != driver_id):
                raise OfferNotFound(offer_id)
            if state == OfferState.expired and now < offer.deadline:
                raise OfferClosed(f"offer {offer_id} is not due yet")
            if state == OfferState.rejected and now >= offer.deadline \
                    and offer.state == OfferState.pending:
                state = OfferState.expired
            offer.close(state, now)
            st = uow.drivers.get(offer.driver_id)
            freed = st is not None and st.status == DriverStatus.offered \
                and st.trip_id == offer.trip_id
            if st is not None and freed:
                st.status = DriverStatus.available
                st.trip_id = None
                st.updated_at = now
            record = uow.records.get(offer.trip_id) or DispatchRecord(offer.trip_id, now)
            record.log(state.value, now, driver_id=offer.driver_id, offer_id=offer.id)
            try:
                uow.offers.save(offer)
                if st is not None and freed:
                    uow.drivers.save(st)
            except Conflict:
                raise OfferClosed(f"offer {offer_id} was answered concurrently") from None
            self._save_record(uow, record)
            uow.commit()
        if freed:
            self.directory_set(offer.driver_id, DriverStatus.available, None)
        return offer

    def _withdraw_offers_of_driver(self, uow: Any, driver_id: str, now: float
                                   ) -> str | None:
        trip_id = None
        for offer in uow.offers.pending_for_driver(driver_id):
            offer.close(OfferState.withdrawn, now)
            uow.offers.save(offer)
            record = uow.records.get(offer.trip_id)
            if record is not None:
                record.log("withdrawn", now, driver_id=driver_id, offer_id=offer.id)
                uow.records.save(record)
            trip_id = offer.trip_id
        return trip_id

    # --- batched policy --------------------------------------------------------------------

    def enqueue_batch(self, trip_id: str) -> None:
        first = not self._pending_batch
        self._pending_batch.append(trip_id)
        if first:
            self.timers.call_at(self.clock.now() + self.config.batch_window_s, self.run_batch)

    def run_batch(self) -> None:
        from .batching import assign_batch

        batch, self._pending_batch = self._pending_batch, []
        assign_batch(self, batch)
