"""The trip lifecycle after the match: arrive, start, complete, and cancellations. Each step is
checked against the trip's state machine (illegal -> IllegalTransition) and its actor."""

from __future__ import annotations

from collections.abc import Callable

from ridehail.kernel.clock import Clock
from ridehail.kernel.errors import Conflict
from trips.fares import Tariff
from trips.fees import (
    CancellationPolicy,
    charge_fee,
    check_no_show,
    check_pin,
    new_pin,
    rider_cancel_fee,
)
from trips.model import IllegalTransition, StaleState, Trip, TripNotFound, TripState
from trips.pricing import UpfrontPolicy, meter

from .drivers import DriverDirectory
from .matcher import Matcher
from .model import DispatchRecord, DriverStatus
from .ports import Hooks, TraceStore
from .unit import DispatchUnit, DispatchUnits


class TripLifecycle:
    def __init__(self, units: DispatchUnits, drivers: DriverDirectory, matcher: Matcher, *,
                 clock: Clock, tariff: Tariff, traces: TraceStore, hooks: Hooks,
                 upfront: UpfrontPolicy | None = None,
                 cancellation: CancellationPolicy | None = None,
                 charge: Callable[[str], None] = lambda trip_id: None,
                 ride_done: Callable[[Trip], None] = lambda trip: None) -> None:
        self.units = units
        self.drivers = drivers
        self.matcher = matcher
        self.clock = clock
        self.tariff = tariff
        self.traces = traces
        self.hooks = hooks
        self.upfront = upfront or UpfrontPolicy()
        self.cancellation = cancellation or CancellationPolicy()
        # Enqueues the charge of a cancellation fee (after its commit), as completing a trip
        # enqueues its fare's.
        self.charge = charge
        # Told each completed ride after its commit (the live travel-time correction learns).
        self.ride_done = ride_done

    # --- the driver's steps ------------------------------------------------------------------

    def arrive(self, trip_id: str, driver_id: str) -> Trip:
        return self._driver_step(trip_id, driver_id, "arrive")

    def start(self, trip_id: str, driver_id: str, pin: str | None = None) -> Trip:
        """The rider is on board; with pickup PINs on, the driver enters the rider's PIN
        (`trips.fees.check_pin`: a wrong one counts a try, and is refused)."""
        return self._driver_step(trip_id, driver_id, "start", pin)

    def complete(self, trip_id: str, driver_id: str) -> Trip:
        return self._driver_step(trip_id, driver_id, "complete")

    def _driver_step(self, trip_id: str, driver_id: str, step: str,
                     pin: str | None = None) -> Trip:
        now = self.clock.now()
        refused: Exception | None = None
        with self.units() as uow:
            trip = uow.trips.get(trip_id)
            if trip is None or trip.driver_id != driver_id:
                raise TripNotFound(trip_id)
            st = uow.drivers.get(driver_id)
            if step == "arrive":
                trip.arrive(now)
                if self.cancellation.pickup_pin and trip.pickup_pin is None:
                    trip.pickup_pin = new_pin()
            elif step == "start":
                if trip.state != TripState.driver_arrived:
                    raise IllegalTransition(trip.id, trip.state, TripState.in_progress)
                refused = check_pin(trip, pin, self.cancellation)
                if refused is not None:
                    st = None  # only the try is saved: the trip does not start
                else:
                    trip.start(now)
                if st is not None:
                    st.status = DriverStatus.on_trip
            elif step == "complete":
                if trip.state != TripState.in_progress:
                    raise IllegalTransition(trip.id, trip.state, TripState.completed)
                route = trip.quoted_route() or self.matcher.route(
                    (trip.pickup_lat, trip.pickup_lng), (trip.dropoff_lat, trip.dropoff_lng),
                    trip.requested_at)
                fare = meter(self.tariff, trip, self.traces.points(trip.id), now,
                             self.upfront, route)
                trip.complete(now, distance_m=fare.metered.distance_m, fare_final=fare.total,
                              fare_rule=fare.rule)
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
        if refused is not None:
            raise refused
        # The trip's wake-up, the driver's status and (completed) the ride for the travel-time
        # correction: one send to Redis in the scaled mode.
        with self.matcher.announcing():
            self.matcher.trip_changed(trip)
            if step == "start" and st is not None:
                self.drivers.set_status(driver_id, DriverStatus.on_trip, trip.id, st.version)
            elif step == "complete":
                self.traces.drop(trip.id)
                if st is not None:
                    self.drivers.set_status(driver_id, DriverStatus.available, None, st.version)
                self.hooks.trip_completed(trip.id)
                self.hooks.trip_finished(trip.id, TripState.completed.value)
                self.ride_done(trip)
        return trip

    # --- cancellations -----------------------------------------------------------------------

    def cancel(self, trip_id: str, by_role: str, by_id: str,
               reason: str | None = None) -> Trip:
        if by_role == "driver":
            return self.driver_cancels(trip_id, by_id, reason)
        return self.rider_cancels(trip_id, by_id, reason)

    def rider_cancels(self, trip_id: str, rider_id: str, reason: str | None = None) -> Trip:
        """A rider cancels any trip of theirs not yet started; a pending offer is withdrawn
        and the driver (offered or assigned) is free again. More than `fee_after_s` after a
        driver was assigned, the rider owes the cancellation fee (`trips.fees`), charged
        like a fare."""
        now = self.clock.now()
        with self.units() as uow:
            trip = uow.trips.get(trip_id)
            if trip is None or trip.rider_id != rider_id:
                raise TripNotFound(trip_id)
            # Any write may lose a compare-and-set to a concurrent accept, expiry or step (in
            # another process): that is a 409 to retry, never a 500. Rows are written in the
            # order accept writes them (offer, trip, driver) so PostgreSQL cannot deadlock.
            try:
                fee = rider_cancel_fee(trip, now, self.cancellation)
                trip.cancel("rider", now, reason)
                charge_fee(trip, fee, "cancel_fee")
                withdrawn = uow.offers.withdraw_pending(trip_id, now)
                holder = withdrawn.driver_id if withdrawn is not None else trip.driver_id
                uow.trips.save(trip)
                freed = self._free_driver(uow, holder, trip_id, now)
                uow.records.append(trip_id, now, DispatchRecord.entry(
                    "cancelled_by_rider", now, reason=reason), outcome="cancelled_by_rider")
            except Conflict:
                raise StaleState(f"trip {trip_id} changed concurrently; retry") from None
            uow.commit()
        with self.matcher.announcing():  # the driver's status and the trip's wake-up: one send
            if freed is not None:
                self.drivers.set_status(freed[0], DriverStatus.available, None, freed[1])
            self.matcher.trip_changed(trip)
        if fee:
            self.charge(trip_id)
        self.hooks.trip_finished(trip_id, TripState.cancelled.value)
        return trip

    def no_show(self, trip_id: str, driver_id: str) -> Trip:
        """The driver waited `no_show_wait_s` at the pickup and the rider did not come: the
        trip is cancelled (by the driver, reason "no_show"), the driver is free, and the rider
        owes the fee (`trips.fees.check_no_show`)."""
        now = self.clock.now()
        with self.units() as uow:
            trip = uow.trips.get(trip_id)
            if trip is None or trip.driver_id != driver_id:
                raise TripNotFound(trip_id)
            check_no_show(trip, now, self.cancellation)
            try:
                trip.cancel("driver", now, "no_show")
                charge_fee(trip, self.cancellation.fee, "no_show_fee")
                uow.trips.save(trip)
                freed = self._free_driver(uow, driver_id, trip_id, now)
                uow.records.append(trip_id, now, DispatchRecord.entry("rider_no_show", now),
                                   outcome="rider_no_show")
            except Conflict:
                raise StaleState(f"trip {trip_id} changed concurrently; retry") from None
            uow.commit()
        if freed is not None:
            self.drivers.set_status(freed[0], DriverStatus.available, None, freed[1])
        if trip.fare_final:
            self.charge(trip_id)
        self.matcher.trip_changed(trip)
        self.hooks.trip_finished(trip_id, TripState.cancelled.value)
        return trip

    def driver_cancels(self, trip_id: str, driver_id: str, reason: str | None = None) -> Trip:
        """A driver who cancels before pickup hands the trip back: it returns to `requested`
        and is matched again without them (`Trip.hand_back` records them as having declined,
        and the matcher never offers a trip to a driver who declined it)."""
        now = self.clock.now()
        with self.units() as uow:
            trip = uow.trips.get(trip_id)
            if trip is None or trip.driver_id != driver_id:
                raise TripNotFound(trip_id)
            try:
                handed_back_by = trip.hand_back(now)
                uow.trips.save(trip)
                freed = self._free_driver(uow, handed_back_by, trip_id, now)
                uow.records.append(trip_id, now, DispatchRecord.entry(
                    "cancelled_by_driver", now, reason=reason))
            except Conflict:
                raise StaleState(f"trip {trip_id} changed concurrently; retry") from None
            uow.commit()
        if freed is not None:
            self.drivers.set_status(freed[0], DriverStatus.available, None, freed[1])
        self.matcher.trip_changed(trip)
        self.matcher.dispatch(trip_id)
        return self.matcher.get_trip(trip_id)

    @staticmethod
    def _free_driver(uow: DispatchUnit, driver_id: str | None, trip_id: str,
                     now: float) -> tuple[str, int] | None:
        """The driver and their row's new version, if the row still held the trip and is now
        available; else None."""
        version = None if driver_id is None else uow.drivers.release(driver_id, trip_id, now)
        if driver_id is None or version is None:
            return None
        return driver_id, version
