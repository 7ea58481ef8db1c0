"""The engine facade: the one object the API, the WebSocket, the simulator and the wiring
drive. It builds the collaborators and delegates to them; it holds no rule of its own.

- `DriverDirectory` (drivers.py): online/offline, locations, the in-memory mirror of states;
- `Matcher` (matcher.py): trip requests, candidates, offers, accept/reject/expiry;
- `Batcher` (batching.py): the batched policy's assignment windows;
- `TripLifecycle` (lifecycle.py): arrive, start, complete, cancellations;
- `Supply` (supply.py): available drivers per surge cell and the surge multiplier.

Each use case runs its own units of work and touches the in-memory index and channel only
after it has committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from numpy.typing import NDArray

from geoindex import GeoIndex, Neighbor
from ridehail.kernel.channel import Channel
from ridehail.kernel.clock import Clock, SystemClock
from trips.area import ServiceArea
from trips.fares import FareBreakdown, Tariff
from trips.fees import CancellationPolicy
from trips.model import Trip
from trips.pricing import UpfrontPolicy
from trips.surge import SurgePricer

from .batching import Batcher
from .clock import Timers
from .cluster import LocalEvents
from .drivers import DriverDirectory, DriverEntry
from .eta import EtaModel, StraightLineEta
from .feed import InProcessFeed, LocationFeed
from .lifecycle import TripLifecycle
from .live_eta import LiveEta
from .matcher import DispatchConfig, Matcher
from .model import DriverState, Offer
from .ports import Announcing, DemandEvents, DriverEvents, Hooks, TraceStore
from .supply import Supply
from .trace_pages import LocalTraces
from .unit import DispatchUnits

__all__ = ["DispatchConfig", "DriverEntry", "Engine", "Hooks"]


class Engine:
    def __init__(
        self,
        uow_factory: DispatchUnits,
        index: GeoIndex,
        *,
        new_id: Callable[[], str],
        clock: Clock | None = None,
        timers: Timers,
        tariff: Tariff,
        channel: Channel | None = None,
        trip_channel: Channel | None = None,
        eta: EtaModel | None = None,
        config: DispatchConfig | None = None,
        service_area: ServiceArea | None = None,
        surge: SurgePricer | None = None,
        hooks: Hooks | None = None,
        feed: LocationFeed | None = None,
        events: DriverEvents | None = None,
        demand: DemandEvents | None = None,
        traces: TraceStore | None = None,
        upfront: UpfrontPolicy | None = None,
        cancellation: CancellationPolicy | None = None,
        charge: Callable[[str], None] | None = None,
        announcing: Announcing | None = None,
    ) -> None:
        self.index = index
        self.clock: Clock = clock or SystemClock()
        self.timers = timers
        # Wake-ups after a commit: a driver's new offer (keyed by driver), a trip's change
        # (keyed by trip). The connection edge subscribes; messages never carry the truth.
        self.channel = channel or Channel("offers")
        self.trip_channel = trip_channel or Channel("trips")
        self.config = config or DispatchConfig()
        self.service_area = service_area
        self.tariff = tariff
        self.surge = surge
        # Pickup ETAs, the quote's duration and distance (dispatch/eta.py): the one model.
        self.eta: EtaModel = eta or StraightLineEta()
        self.hooks = hooks or Hooks()
        # Dispatch breaks ETA ties by rating; the wiring keeps it current.
        self.driver_rating: dict[str, float] = {}
        # Embedded by default; the scaled mode plugs in the Redis ones (ridehail/scaled.py).
        self.drivers = DriverDirectory(
            uow_factory, index, self.clock, feed or InProcessFeed(index),
            events or LocalEvents(), traces if traces is not None else LocalTraces())
        self.supply = Supply(index, self.clock, surge, resolution=self.config.surge_resolution,
                             refresh_s=self.config.supply_refresh_s, demand=demand)
        self.matcher = Matcher(
            uow_factory, index, self.drivers, new_id=new_id, clock=self.clock, timers=timers,
            channel=self.channel, trip_channel=self.trip_channel,
            eta=self.eta, config=self.config,
            service_area=service_area, tariff=tariff, supply=self.supply, hooks=self.hooks,
            driver_rating=self.driver_rating, announcing=announcing or contextlib.nullcontext)
        self.batcher = Batcher(uow_factory, self.matcher, self.clock, timers, self.config)
        self.lifecycle = TripLifecycle(
            uow_factory, self.drivers, self.matcher, clock=self.clock, tariff=tariff,
            traces=self.drivers.traces, hooks=self.hooks, upfront=upfront,
            cancellation=cancellation, charge=charge or (lambda trip_id: None),
            ride_done=self._ride_done)

    def _ride_done(self, trip: Trip) -> None:
        """A completed ride teaches the live travel-time correction, when there is one."""
        if isinstance(self.eta, LiveEta) and trip.started_at is not None \
                and trip.completed_at is not None:
            self.eta.observe_ride((trip.pickup_lat, trip.pickup_lng),
                                  (trip.dropoff_lat, trip.dropoff_lng), trip.started_at,
                                  trip.completed_at,
                                  (f"driver:{trip.driver_id}", f"rider:{trip.rider_id}"))

    @property
    def directory(self) -> dict[str, DriverEntry]:
        """The online drivers this process knows (read-only use: the debug map, ratings)."""
        return self.drivers.entries

    # --- drivers -----------------------------------------------------------------------------

    def restore(self) -> int:
        return self.drivers.restore()

    def reconcile(self) -> int:
        return self.drivers.reconcile()

    def go_online(self, driver_id: str, vehicle_class: str) -> DriverState:
        return self.drivers.go_online(driver_id, vehicle_class)

    def go_offline(self, driver_id: str) -> DriverState:
        """Going offline withdraws a pending offer; the trip goes to the next driver."""
        st, redispatch = self.drivers.go_offline(driver_id)
        if redispatch:
            self.matcher.dispatch(redispatch)
        return st

    def driver_entry(self, driver_id: str) -> DriverEntry | None:
        return self.drivers.entry(driver_id)

    def update_location(self, driver_id: str, lat: float, lng: float,
                        ts: float | None = None) -> None:
        self.drivers.update_location(driver_id, lat, lng, ts)

    def update_locations(self, rows: list[tuple[str, float, float, float | None]]
                         ) -> tuple[int, list[dict[str, Any]]]:
        return self.drivers.update_locations(rows)

    def update_location_columns(self, ids: list[str], lats: Sequence[float] | NDArray[Any],
                                lngs: Sequence[float] | NDArray[Any],
                                ts: float | Sequence[float | None] | None
                                ) -> tuple[int, list[dict[str, Any]]]:
        return self.drivers.update_location_columns(ids, lats, lngs, ts)

    def apply_driver_event(self, driver_id: str, status: str, vehicle_class: str | None,
                           trip_id: str | None, version: int | None = None) -> None:
        self.drivers.apply_event(driver_id, status, vehicle_class, trip_id, version)

    # --- riders ------------------------------------------------------------------------------

    def nearby(self, lat: float, lng: float, radius_m: float, limit: int,
               vehicle_class: str | None = None) -> list[tuple[Neighbor, float]]:
        return self.matcher.nearby(lat, lng, radius_m, limit, vehicle_class)

    def surge_at(self, lat: float, lng: float) -> Decimal:
        return self.supply.surge_at(lat, lng)

    def quote(self, pickup: tuple[float, float], dropoff: tuple[float, float]) -> FareBreakdown:
        return self.matcher.quote(pickup, dropoff)

    def request_trip(self, rider_id: str, pickup: tuple[float, float],
                     dropoff: tuple[float, float], vehicle_class: str = "standard") -> Trip:
        """Open the trip (`Matcher.open_trip` says whether this rider may) and match it: at
        once, in the same transaction (greedy, `Matcher.request`), or with the next batch
        window (batched)."""
        if self.config.policy == "batched":
            trip = self.matcher.open_trip(rider_id, pickup, dropoff, vehicle_class)
            self.batcher.enqueue(trip.id)
            return trip
        return self.matcher.request(rider_id, pickup, dropoff, vehicle_class)

    def get_trip(self, trip_id: str) -> Trip:
        return self.matcher.get_trip(trip_id)

    def trip_for(self, trip_id: str, role: str, account_id: str) -> Trip:
        return self.matcher.trip_for(trip_id, role, account_id)

    # --- offers ------------------------------------------------------------------------------

    def dispatch(self, trip_id: str) -> Offer | None:
        return self.matcher.dispatch(trip_id)

    def pending_offers(self, driver_id: str) -> list[Offer]:
        return self.matcher.pending_offers(driver_id)

    def offers_with_trips(self, driver_id: str) -> list[tuple[Offer, Trip]]:
        return self.matcher.offers_with_trips(driver_id)

    def accept_offer(self, offer_id: str, driver_id: str) -> Trip:
        return self.matcher.accept_offer(offer_id, driver_id)

    def reject_offer(self, offer_id: str, driver_id: str) -> Offer:
        return self.matcher.reject_offer(offer_id, driver_id)

    def expire_offer(self, offer_id: str) -> None:
        self.matcher.expire_offer(offer_id)

    def sweep_expired(self, limit: int = 100) -> int:
        return self.matcher.sweep_expired(limit)

    # --- the trip after the match --------------------------------------------------------------

    def arrive(self, trip_id: str, driver_id: str) -> Trip:
        return self.lifecycle.arrive(trip_id, driver_id)

    def start(self, trip_id: str, driver_id: str, pin: str | None = None) -> Trip:
        return self.lifecycle.start(trip_id, driver_id, pin)

    def no_show(self, trip_id: str, driver_id: str) -> Trip:
        return self.lifecycle.no_show(trip_id, driver_id)

    def complete(self, trip_id: str, driver_id: str) -> Trip:
        return self.lifecycle.complete(trip_id, driver_id)

    def cancel(self, trip_id: str, by_role: str, by_id: str,
               reason: str | None = None) -> Trip:
        return self.lifecycle.cancel(trip_id, by_role, by_id, reason)
