"""The one bootstrap: builds the engine (index, publisher, timers, channel, fares, surge,
hooks), the payment provider and the Celery tasks' context, for the API, the worker and the
simulator alike."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from dispatch.clock import SystemClock, ThreadTimers
from dispatch.engine import DispatchConfig, Engine, Hooks
from dispatch.eta import EtaModel, StraightLineEta
from dispatch.learned_eta import load as load_eta
from dispatch.live_eta import LiveCorrection, LiveEta
from dispatch.publisher import IndexPublisher
from geoindex import GeoIndex
from ridehail.warmup import warm_up
from trips.area import ServiceArea
from trips.billing import BillingPolicy
from trips.fares import NYC_YELLOW_2016
from trips.fees import CancellationPolicy
from trips.payments import PaymentProvider
from trips.pricing import UpfrontPolicy
from trips.sandbox import SandboxProvider
from trips.surge import SurgePricer
from trips.tasks import WorkerContext

from .kernel import ids
from .kernel.channel import Channel
from .kernel.db import make_engine
from .scaled import Stoppable, scaled_parts, start_scaled
from .settings import Settings, SettingsError
from .units import UnitFactory, memory_uow_factory, sql_uow_factory

# The meter's tariff, for quotes, final fares and receipts alike: the one service area shipped
# is New York City, priced with its 2016 yellow-cab tariff.
TARIFF = NYC_YELLOW_2016


def payment_provider(settings: Settings, uow_factory: UnitFactory) -> PaymentProvider:
    """The payment provider (the sandbox; a real one plugs in here)."""
    return SandboxProvider(uow_factory, slow_s=settings.sandbox_slow_s,
                           test_hooks=settings.sandbox_test_hooks)


def worker_context(settings: Settings, uow_factory: UnitFactory | None = None,
                   provider: PaymentProvider | None = None) -> Callable[[], WorkerContext]:
    """How a process builds the Celery tasks' context: with the API's own units of work and
    provider when given (the embedded worker shares the app's database engine), else with a
    database engine of its own (a `ridehail worker` process)."""

    def build() -> WorkerContext:
        units, close = uow_factory, None
        if units is None:
            engine = make_engine(settings.database_url)
            units, close = sql_uow_factory(engine), engine.dispose
        return WorkerContext(
            units, provider or payment_provider(settings, units),
            BillingPolicy(settings.commission_bps, settings.fallback_payment_token),
            stuck_after_s=settings.payment_stuck_after_s,
            max_retries=settings.payment_max_retries,
            retry_base_s=settings.payment_retry_base_s,
            close=close or (lambda: None),
        )

    return build


def build_sim_engine(*, index: GeoIndex, clock: Any, hooks: Hooks, config: DispatchConfig,
                     service_area: ServiceArea, surge: SurgePricer,
                     new_id: Callable[[], str], eta: EtaModel | None = None) -> Engine:
    """The simulator's engine: the API's Engine on memory units of work, with the simulated
    clock as its clock and its timers, and the simulation's travel-time model."""
    return Engine(memory_uow_factory(), index, new_id=new_id, clock=clock, timers=clock,
                  config=config, service_area=service_area, tariff=TARIFF, surge=surge,
                  hooks=hooks, eta=eta)


def eta_model(settings: Settings) -> EtaModel:
    """The city's travel-time model (RIDEHAIL_ETA_MODEL; the shipped NYC model for the NYC
    service area), else the straight line. Its kernel is compiled (or loaded) here, not in the
    first request."""
    path = settings.eta_model_path()
    if path is None:
        return StraightLineEta()
    model = load_eta(path)
    model.travel(40.75, -73.99, 40.76, -73.98, 0.0)
    return model


def trip_rules(settings: Settings) -> dict[str, Any]:
    """The meter's and the fees' settings, as the engine takes them (issue 13, items 3, 15)."""
    return {
        "tariff": dataclasses.replace(
            TARIFF, max_speed_mps=Decimal(str(settings.meter_max_speed_mps))),
        "upfront": UpfrontPolicy(tolerance=Decimal(str(settings.fare_tolerance)),
                                 margin=Decimal(str(settings.fare_route_margin)),
                                 cap=Decimal(str(settings.fare_cap))),
        "cancellation": CancellationPolicy(
            fee=settings.cancel_fee, fee_after_s=settings.cancel_fee_after_s,
            no_show_wait_s=settings.no_show_wait_s, pickup_pin=settings.pickup_pin,
            pin_attempts=settings.pickup_pin_attempts),
    }


def road_eta(settings: Settings, fallback: EtaModel) -> EtaModel:
    """The engine's ETA model from the city's road map (RIDEHAIL_ROADS), `fallback` (the
    city's travel-time model) for positions off its roads; without a map, `fallback`. A file
    that is not a road map stops start-up with a message naming the variable."""
    if settings.roads is None:
        return fallback
    from roads import RoadError, Router, load_road_network

    try:
        network = load_road_network(settings.roads)
    except RoadError as exc:
        raise SettingsError(f"RIDEHAIL_ROADS: {exc}") from None
    return Router(network, fallback=fallback)


def live_eta(settings: Settings, model: EtaModel, announce: Any = None) -> EtaModel:
    """`model` corrected by the rides this process completes and, in the scaled mode, those
    the others announce (RIDEHAIL_ETA_LIVE_HALF_LIFE_S; 0: `model` as it is)."""
    if not settings.eta_live_half_life_s:
        return model
    return LiveEta(model, LiveCorrection(half_life_s=settings.eta_live_half_life_s),
                   announce=announce)


def payment_hooks(celery: Any) -> Hooks:
    """Completing a trip enqueues its charge (the hook runs after the trip's commit)."""
    from trips.tasks import enqueue_charge

    return Hooks(trip_completed=lambda trip_id: enqueue_charge(celery, trip_id))


def build_engine(settings: Settings, uow_factory: Any, *, start: bool = True,
                 hooks: Hooks | None = None, celery: Any = None
                 ) -> tuple[Engine, list[Any], Channel]:
    """The engine, its background parts (stopped in reverse), and the channel on which
    revoked tokens are announced (relayed to every process in the scaled mode)."""
    if hooks is None and celery is not None:
        hooks = payment_hooks(celery)
    if start:
        warm_up()  # compile or load the numba kernels now, not in the first request
    clock = SystemClock()
    index = GeoIndex(backend=settings.index_backend, resolution=settings.index_resolution,
                     ttl_s=settings.location_ttl_s, clock=clock.now)
    timers = ThreadTimers(clock)
    config = DispatchConfig(
        offer_timeout_s=settings.offer_timeout_s, radius_m=settings.dispatch_radius_m,
        max_candidates=settings.dispatch_max_candidates, policy=settings.dispatch_policy,
        batch_window_s=settings.batch_window_s, batch_hold_s=settings.batch_hold_s,
        batch_eta_cap_s=settings.batch_eta_cap_s,
        batch_eta_cap_growth=settings.batch_eta_cap_growth,
        batch_forward_s=settings.batch_forward_s,
    )
    # The scaled mode shares the city through Redis (ridehail/scaled.py); embedded: in-process.
    parts = scaled_parts(settings) if settings.scaled else None
    shared: dict[str, Any] = {} if parts is None else {
        "feed": parts.feed, "events": parts.events, "traces": parts.traces,
        "demand": parts.demand, "announcing": parts.announcing.batch,
        "channel": parts.offers, "trip_channel": parts.trips}
    revocations = Channel("revocations") if parts is None else parts.revocations
    charge = None
    if celery is not None:
        from trips.tasks import enqueue_charge

        # A cancellation or no-show fee is charged like a fare, after its commit.
        charge = functools.partial(enqueue_charge, celery)
    engine = Engine(
        uow_factory, index, new_id=ids.new_id, clock=clock, timers=timers, config=config,
        service_area=ServiceArea.from_geojson(settings.service_area),
        surge=SurgePricer(clock=clock.now), hooks=hooks, charge=charge,
        eta=live_eta(settings, road_eta(settings, eta_model(settings)),
                     announce=None if parts is None else parts.rides.announce),
        **trip_rules(settings),
        **shared,
    )
    background: list[Any] = []
    if start:
        if parts is not None:
            background.append(start_scaled(parts, engine))  # before restore: nothing missed
        engine.restore()
        publisher = IndexPublisher(index, settings.publish_interval_s)
        publisher.start()
        timers.start()
        # Deadlines are swept from the database too: an offer made by a process that died
        # still expires, exactly once (the expiry is a compare-and-set).
        timers.every(1.0, engine.sweep_expired)
        if parts is not None:
            # Repairs driver events lost while Redis was away (a timer, not a request).
            timers.every(10.0, engine.reconcile)
        background.append(Stoppable(publisher, timers))
        if celery is not None:
            background.append(_wire_payments(settings, engine, uow_factory, timers, celery))
    return engine, background, revocations


class _DisposeTasks:
    def __init__(self, celery: Any) -> None:
        self.celery = celery

    def stop(self) -> None:
        from trips.tasks import dispose

        dispose(self.celery)


def _wire_payments(settings: Settings, engine: Engine, uow_factory: Any, timers: ThreadTimers,
                   celery: Any) -> _DisposeTasks:
    from trips.ratings import averages
    from trips.tasks import sweep

    def refresh_ratings() -> None:
        # Dispatch breaks ETA ties by rating: keep the online drivers' averages at hand.
        engine.driver_rating.update(averages(uow_factory, list(engine.directory)))

    refresh_ratings()
    timers.every(30.0, refresh_ratings)
    # A worker in this process applies ratings: it updates the ranking at once.
    celery.conf.ridehail_rating_listener = engine.driver_rating.__setitem__
    if not settings.scaled:
        # No beat in the embedded mode: this process sweeps stuck payments itself.
        timers.every(settings.payment_sweep_interval_s, functools.partial(sweep, celery))
    return _DisposeTasks(celery)
