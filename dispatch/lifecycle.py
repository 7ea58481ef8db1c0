"""The trip lifecycle after the match: arrive, start, complete, cancel. Each step is checked
against the trip's state machine (illegal -> IllegalTransition) and its actor."""

from __future__ import annotations

from decimal import Decimal

from ridehail.kernel.errors import Conflict
from trips.fares import final_fare
from trips.model import IllegalTransition, StaleState, Trip, TripNotFound, TripState

from .base import EngineBase
from .model import DispatchRecord, DriverStatus, OfferState


class Lifecycle(EngineBase):
    def _driver_step(self, trip_id: str, driver_id: str, step: str) -> Trip:
        now = self.clock.now()
        with self.uow_factory() as uow:
            trip = uow.trips.get(trip_id)
            if trip is None or trip.driver_id != driver_id:
                raise TripNotFound(trip_id)
            st = uow.drivers.get(driver_id)
            if step == "arrive":
                trip.arrive(now)
            elif step == "start":
                trip.start(now)
                if st is not None:
                    st.status = DriverStatus.on_trip
            elif step == "complete":
                if trip.state != TripState.in_progress:
                    raise IllegalTransition(trip.id, trip.state, TripState.completed)
                trace = self._trip_trace(trip, now)
                fare = final_fare(self.tariff, trace, surge=Decimal(trip.surge))
                trip.complete(now, distance_m=fare.distance_m, fare_final=fare.total)
                if st is not None:
                    st.status = DriverStatus.available
                    st.trip_id = None
            if st is not None:
                st.updated_at = now
            try:
                uow.trips.save(trip)
                if st is not None:
                    uow.drivers.save(st)
            except Conflict:
                raise IllegalTransition(trip.id, trip.state, trip.state) from None
            uow.commit()
        if step == "start":
            self.directory_set(driver_id, DriverStatus.on_trip, trip.id)
            self.traces.setdefault(trip.id, [])
        elif step == "complete":
            self.traces.pop(trip.id, None)
            self.directory_set(driver_id, DriverStatus.available, None)
            self.hooks.trip_completed(trip.id)
            self.hooks.trip_finished(trip.id, TripState.completed.value)
        return trip

    def _trip_trace(self, trip: Trip, now: float) -> list[tuple[float, float, float]]:
        """The driver's trace during the trip, bracketed by the pickup and the last position
        (the dropoff when the driver sent nothing on the way)."""
        points = list(self.traces.get(trip.id, []))
        start = trip.started_at or now
        trace = [(start, trip.pickup_lat, trip.pickup_lng)]
        trace += [p for p in points if start <= p[0] <= now]
        if len(trace) == 1:
            trace.append((now, trip.dropoff_lat, trip.dropoff_lng))
        elif trace[-1][0] < now:
            trace.append((now, trace[-1][1], trace[-1][2]))
        return trace

    def arrive(self, trip_id: str, driver_id: str) -> Trip:
        return self._driver_step(trip_id, driver_id, "arrive")

    def start(self, trip_id: str, driver_id: str) -> Trip:
        return self._driver_step(trip_id, driver_id, "start")

    def complete(self, trip_id: str, driver_id: str) -> Trip:
        return self._driver_step(trip_id, driver_id, "complete")

    def cancel(self, trip_id: str, by_role: str, by_id: str,
               reason: str | None = None) -> Trip:
        """Riders cancel any trip not yet started. Drivers cancel an assigned trip before
        pickup: it goes back to `requested` and is matched again without them."""
        now = self.clock.now()
        freed: str | None = None
        redispatch = False
        with self.uow_factory() as uow:
            trip = uow.trips.get(trip_id)
            if trip is None or (by_role == "rider" and trip.rider_id != by_id) or (
                    by_role == "driver" and trip.driver_id != by_id):
                raise TripNotFound(trip_id)
            record = uow.records.get(trip_id) or DispatchRecord(trip_id, now)
            # Any write may lose a compare-and-set to a concurrent accept, expiry or step (in
            # another process): that is a 409 to retry, never a 500. Rows are written in the
            # order accept writes them (offer, trip, driver) so PostgreSQL cannot deadlock.
            try:
                if by_role == "rider":
                    trip.cancel("rider", now, reason)
                    freed = trip.driver_id
                    for offer in uow.offers.for_trip(trip_id):
                        if offer.state == OfferState.pending:
                            offer.close(OfferState.withdrawn, now)
                            uow.offers.save(offer)
                            freed = offer.driver_id
                    record.outcome = "cancelled_by_rider"
                else:
                    freed = trip.hand_back(now)
                    redispatch = True
                record.log(f"cancelled_by_{by_role}", now, reason=reason)
                uow.trips.save(trip)
                if freed is not None:
                    st = uow.drivers.get(freed)
                    if st is not None and st.trip_id == trip_id:
                        st.status = DriverStatus.available
                        st.trip_id = None
                        st.updated_at = now
                        uow.drivers.save(st)
                self._save_record(uow, record)
            except Conflict:
                raise StaleState(f"trip {trip_id} changed concurrently; retry") from None
            uow.commit()
        if freed is not None:
            self.directory_set(freed, DriverStatus.available, None)
        if redispatch:
            self.dispatch(trip_id)
            return self.get_trip(trip_id)
        self.hooks.trip_finished(trip_id, TripState.cancelled.value)
        return trip
