"""Engine mode: the real dispatch `Engine` on the in-memory unit of work, driven in simulated
time. There is no second dispatch here: riders call `request_trip`, drivers learn of offers
through the `offer_made` hook (what the driver app's channel does) and answer with
`accept_offer`/`reject_offer`, and every step of a trip is the engine's own use case.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from dispatch.engine import DispatchConfig, Engine, Hooks
from dispatch.eta import EtaModel
from dispatch.model import DispatchError, Offer
from geoindex import GeoIndex
from trips.area import ServiceArea
from trips.model import TripError
from trips.surge import SurgePricer

from .clock import SimClock
from .demand import TripRequest
from .fleet import BUSY, Fleet, Phase, busy
from .metrics import ConservationError, Metrics, TripFacts, conservation_violations
from .report import SimulationResult
from .riders import Riders
from .scenario import Scenario, build_result
from .travel import travel_model

SUPPLY_SAMPLE_S = 60.0
LOOKAHEAD_S = 900.0  # "toward demand" heads for pickups expected in the next 15 minutes
LOOKBACK_S = 900.0  # "rebalance" heads for requests unserved in the last 15 minutes


class EngineBuilder(Protocol):
    """Builds the engine the simulation drives: the wiring's `build_sim_engine` (the same
    Engine as the API's, on memory units of work and the simulated clock)."""

    def __call__(self, *, index: GeoIndex, clock: SimClock, hooks: Hooks,
                 config: DispatchConfig, service_area: ServiceArea, surge: SurgePricer,
                 new_id: Callable[[], str], eta: EtaModel | None = None) -> Engine: ...


class EngineSimulation:
    def __init__(self, sc: Scenario, build_engine: EngineBuilder,
                 engine_config: DispatchConfig | None = None) -> None:
        cfg = sc.config
        self.sc = sc
        self.clock = SimClock()
        ids = itertools.count(1)
        # The quadtree: its keys cost nothing per location, and surge's supply per cell is
        # kept by the index at publish time for either backend (`GeoIndex.keep_supply`).
        self.index = GeoIndex(backend="quadtree", ttl_s=30.0, clock=self.clock.now)
        self.hooks = Hooks(trip_completed=self._on_completed, trip_finished=self._on_finished,
                           offer_made=self._on_offer)
        fleet_config = cfg.fleet_config()
        # One travel model for dispatch's predictions and the fleet's drives (simulator/travel.py)
        travel, spread = travel_model(cfg.eta_model, sc.city.name, fleet_config.start_hour)
        if sc.router is not None:  # a road city: the routes the cars drive, no spread
            travel, spread = sc.router, 0.0
        self.engine = build_engine(
            index=self.index, clock=self.clock, hooks=self.hooks,
            config=engine_config or cfg.dispatch_config(),
            service_area=ServiceArea(sc.city.geometry, sc.city.name),
            surge=SurgePricer(clock=self.clock.now), new_id=lambda: str(next(ids)), eta=travel,
        )
        self.fleet = Fleet(fleet_config, sc.city, sc.rng, travel=travel, spread=spread,
                           router=sc.router)
        self.predicted: dict[int, tuple[float, float]] = {}  # slot -> (offer's eta_s, accepted)
        self.riders = Riders(cfg.rider_config(), sc.rng)
        self.metrics = Metrics(cfg.duration_s)
        self.requests = sc.plan.requests
        self._req_t = [r.t_s for r in self.requests]
        n = cfg.drivers
        self.offer_of: list[str | None] = [None] * n
        self.leaving = np.zeros(n, bool)
        self.idle_epoch = [0] * n
        self.trip_ids: list[str] = []
        self.rider_of: dict[str, str] = {}
        self.request_of: dict[str, TripRequest] = {}
        self.unserved: list[tuple[float, TripRequest]] = []  # (when it ended, the request)
        self.done = False
        self.wall_s = 0.0
        self.cpu_s = 0.0

    # --- the run ---------------------------------------------------------------------------

    def run(self, progress: bool = False) -> SimulationResult:
        started, cpu = time.perf_counter(), time.process_time()
        with collector_paused():
            self._run(progress)
        self.wall_s = time.perf_counter() - started
        self.cpu_s = time.process_time() - cpu  # robust to other load on a shared machine
        return self.result()

    def _run(self, progress: bool) -> None:
        cfg = self.sc.config
        self.fleet.place(self.requests)
        for i in range(len(self.fleet.ids)):
            self.clock.call_at(float(self.fleet.online_at[i]), self._online_cb(i))
        for r in self.requests:
            self.clock.call_at(r.t_s, self._request_cb(r))
        self.clock.call_at(0.0, self._tick)
        horizon = cfg.duration_s + cfg.drain_limit_s
        bar = tqdm(total=int(cfg.duration_s), unit="sim s", disable=not progress,
                   desc=f"simulate {cfg.policy}", leave=False)
        with bar:
            while not self.done and self.clock.now() < horizon:
                step_end = min(self.clock.now() + 60.0, horizon)
                self.clock.run_until(step_end)
                bar.update(max(0, min(int(step_end), int(cfg.duration_s)) - bar.n))
        self.fleet.finish_legs(self.clock.now())

    def result(self) -> SimulationResult:
        trips = self.trip_facts()
        bad = conservation_violations(trips, self.metrics.finished, self.metrics.completed_calls)
        if bad:
            raise ConservationError("; ".join(bad[:10]) + (f" (+{len(bad) - 10})"
                                                             if len(bad) > 10 else ""))
        extra = {"simulated_s": round(self.clock.now(), 3), "checks": "passed",
                 "events": self.clock.events_run, **self.fleet.road_figures()}
        return build_result(self.sc, self.metrics, trips, self.fleet.empty_m,
                            self.fleet.loaded_m, "engine", extra)

    def trip_facts(self) -> list[TripFacts]:
        out = []
        for tid in self.trip_ids:
            t = self.engine.get_trip(tid)
            end = t.completed_at or t.cancelled_at
            spans = ((t.driver_id, t.assigned_at, end if end is not None else self.clock.now()),
                     ) if t.driver_id and t.assigned_at is not None else ()
            out.append(TripFacts(tid, t.requested_at, t.state.value, t.driver_id, t.arrived_at,
                                 end, t.fare_final, t.cancelled_by, spans))  # type: ignore[arg-type]
        return out

    # --- time ------------------------------------------------------------------------------

    def _tick(self) -> None:
        """Every driver online sends its position (one batch), then the index publishes."""
        cfg = self.sc.config
        t = self.clock.now()
        f = self.fleet
        online = f.phase != Phase.offline
        if t > cfg.duration_s:
            # The demand window is over: only the drivers still on a trip matter (fares).
            online &= busy(f.phase)
        idx = np.flatnonzero(online)
        lats, lngs = f.positions(t)
        if idx.size:  # one fleet gateway's batch, as columns
            self.engine.update_location_columns(f.id_array[idx].tolist(), lats[idx],
                                                lngs[idx], t)
        self.index.publish()
        self.metrics.tick(t, cfg.tick_s, int((f.phase != Phase.offline).sum()),
                          int(busy(f.phase).sum()))
        if t <= cfg.duration_s and t % SUPPLY_SAMPLE_S < cfg.tick_s:
            idle = np.flatnonzero(f.phase == Phase.idle)
            self.metrics.supply_sample(lats[idle], lngs[idle])
        if t >= cfg.duration_s and len(self.metrics.finished) == len(self.trip_ids):
            self.done = True
            return
        self.clock.call_at(t + cfg.tick_s, self._tick)

    # --- drivers ---------------------------------------------------------------------------

    def _online_cb(self, i: int) -> Callable[[], None]:
        def go() -> None:
            if self.clock.now() >= self.sc.config.duration_s:
                return
            self.engine.go_online(self.fleet.ids[i], "standard")
            self._set_idle(i)
            self.clock.call_at(float(self.fleet.offline_at[i]), lambda: self._shift_end(i))
        return go

    def _shift_end(self, i: int) -> None:
        if self.clock.now() >= self.sc.config.duration_s:
            return
        if self.fleet.phase[i] in BUSY:
            self.leaving[i] = True  # after this trip
            return
        self._go_offline(i)

    def _go_offline(self, i: int) -> None:
        self.engine.go_offline(self.fleet.ids[i])
        self.offer_of[i] = None
        self.fleet.stop(i, self.clock.now())
        self.fleet.phase[i] = Phase.offline
        self.idle_epoch[i] += 1

    def _set_idle(self, i: int) -> None:
        if self.leaving[i]:
            self._go_offline(i)
            return
        self.fleet.phase[i] = Phase.idle
        self.idle_epoch[i] += 1
        if self.fleet.config.reposition != "stay":
            epoch = self.idle_epoch[i]
            self.clock.call_later(self.fleet.config.reposition_every_s,
                                  lambda: self._reposition(i, epoch))

    def _reposition(self, i: int, epoch: int) -> None:
        t = self.clock.now()
        if self.idle_epoch[i] != epoch or t >= self.sc.config.duration_s:
            return
        if self.fleet.config.reposition == "rebalance":
            lo = bisect.bisect_left(self.unserved, t - LOOKBACK_S, key=lambda u: u[0])
            toward = [r for _at, r in self.unserved[lo:]]
        else:
            lo = bisect.bisect_left(self._req_t, t)
            hi = bisect.bisect_left(self._req_t, t + LOOKAHEAD_S)
            toward = self.requests[lo:hi]
        target = self.fleet.reposition_target(i, t, toward)
        if target is not None:
            self.fleet.go_to(i, target[0], target[1], t)
        self.clock.call_later(self.fleet.config.reposition_every_s,
                              lambda: self._reposition(i, epoch))

    def _on_offer(self, offer: Offer) -> None:
        i = self.fleet.slot[offer.driver_id]
        self.metrics.offers_made += 1
        self.offer_of[i] = offer.id
        self.fleet.phase[i] = Phase.offered
        self.idle_epoch[i] += 1
        accept = self.fleet.accepts()
        self.clock.call_later(self.fleet.response_delay(),
                              lambda: self._answer(i, offer, accept))

    def _answer(self, i: int, offer: Offer, accept: bool) -> None:
        if self.offer_of[i] != offer.id:
            return  # withdrawn meanwhile (the rider cancelled, the driver went offline)
        self.offer_of[i] = None
        driver = self.fleet.ids[i]
        try:
            if not accept:
                self.engine.reject_offer(offer.id, driver)
                self._set_idle(i)
                return
            trip = self.engine.accept_offer(offer.id, driver)
        except (DispatchError, TripError):
            self._set_idle(i)  # the offer closed first (a deadline, a cancel)
            return
        self.metrics.offers_accepted += 1
        self.predicted[i] = (offer.eta_s, self.clock.now())
        self.fleet.phase[i] = Phase.to_pickup
        self.fleet.trip[i] = trip.id
        at = self.fleet.go_to(i, trip.pickup_lat, trip.pickup_lng, self.clock.now())
        self.clock.call_at(at, lambda: self._arrive(i, trip.id))

    def _arrive(self, i: int, trip_id: str) -> None:
        self.engine.arrive(trip_id, self.fleet.ids[i])
        if i in self.predicted:  # dispatch's pickup ETA against the drive it took
            eta_s, accepted = self.predicted.pop(i)
            self.metrics.pickup_eta(eta_s, self.clock.now() - accepted)
        self.fleet.phase[i] = Phase.waiting
        self.clock.call_later(self.riders.boarding_s(), lambda: self._start(i, trip_id))

    def _start(self, i: int, trip_id: str) -> None:
        trip = self.engine.start(trip_id, self.fleet.ids[i])
        self.fleet.phase[i] = Phase.on_trip
        at = self.fleet.go_to(i, trip.dropoff_lat, trip.dropoff_lng, self.clock.now(),
                              loaded=True)
        self.clock.call_at(at, lambda: self._complete(i, trip_id, trip.dropoff_lat,
                                                      trip.dropoff_lng))

    def _complete(self, i: int, trip_id: str, lat: float, lng: float) -> None:
        driver = self.fleet.ids[i]
        # The app's last fix is the dropoff, so the fare's trace ends where the trip did.
        self.engine.update_location(driver, lat, lng, self.clock.now())
        self.engine.complete(trip_id, driver)
        self.fleet.trip[i] = None
        self._set_idle(i)

    # --- riders ----------------------------------------------------------------------------

    def _request_cb(self, r: TripRequest) -> Callable[[], None]:
        def ask() -> None:
            rider = f"r{r.request_id}"
            self.metrics.request(r.pickup_lat, r.pickup_lng)
            trip = self.engine.request_trip(rider, r.pickup, r.dropoff)
            self.trip_ids.append(trip.id)
            self.request_of[trip.id] = r
            if trip.state.value == "no_driver_found":  # ended before request_of knew it
                self.unserved.append((self.clock.now(), r))
            if trip.state.value == "requested":
                self.clock.call_later(self.riders.patience_s(),
                                      lambda: self._give_up(trip.id, rider))
        return ask

    def _give_up(self, trip_id: str, rider: str) -> None:
        if self.engine.get_trip(trip_id).state.value == "requested":
            self.engine.cancel(trip_id, "rider", rider, "no driver in time")

    # --- hooks -----------------------------------------------------------------------------

    def _on_completed(self, trip_id: str) -> None:
        self.metrics.completed_calls[trip_id] += 1

    def _on_finished(self, trip_id: str, state: str) -> None:
        self.metrics.finished[trip_id] += 1
        if state != "completed":
            # Found no driver, or its rider gave up waiting: where the fleet was short.
            r = self.request_of.get(trip_id)
            if r is not None:
                self.unserved.append((self.clock.now(), r))


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a run. A run builds a heap of hundreds of
    thousands of tracked objects (trips, their rows, traces), and at the default thresholds
    the collector walked all of it every few seconds of simulated time: 16 full collections,
    ~20% of a 10,000-driver run's CPU. The run makes next to no cyclic garbage (a collection
    after a whole run finds 7 unreachable objects), so reference counting frees what it drops.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_engine(sc: Scenario, build_engine: EngineBuilder, progress: bool = False,
               **kw: Any) -> tuple[SimulationResult, EngineSimulation]:
    sim = EngineSimulation(sc, build_engine, **kw)
    return sim.run(progress=progress), sim
