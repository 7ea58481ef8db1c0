"""Wires the engine for the API: index, publisher, timers, channel, fares, surge, hooks."""

from __future__ import annotations

from typing import Any

from dispatch.clock import SystemClock, ThreadTimers
from dispatch.engine import DispatchConfig, Engine, Hooks
from dispatch.publisher import IndexPublisher
from geoindex import GeoIndex
from trips.area import ServiceArea
from trips.surge import SurgePricer

from . import ids
from .settings import Settings


class _Stoppable:
    def __init__(self, *parts: Any) -> None:
        self.parts = parts

    def stop(self) -> None:
        for p in self.parts:
            p.stop()


def build_engine(settings: Settings, uow_factory: Any, *, start: bool = True,
                 hooks: Hooks | None = None) -> tuple[Engine, list[Any]]:
    clock = SystemClock()
    index = GeoIndex(backend=settings.index_backend, resolution=settings.index_resolution,
                     ttl_s=settings.location_ttl_s, clock=clock.now)
    timers = ThreadTimers(clock)
    config = DispatchConfig(
        offer_timeout_s=settings.offer_timeout_s, radius_m=settings.dispatch_radius_m,
        max_candidates=settings.dispatch_max_candidates, policy=settings.dispatch_policy,
        batch_window_s=settings.batch_window_s,
    )
    engine = Engine(
        uow_factory, index, new_id=ids.new_id, clock=clock, timers=timers, config=config,
        service_area=ServiceArea.from_geojson(settings.service_area),
        surge=SurgePricer(clock=clock.now), hooks=hooks,
    )
    background: list[Any] = []
    if start:
        engine.restore()
        publisher = IndexPublisher(index, settings.publish_interval_s)
        publisher.start()
        timers.start()
        # Deadlines are swept from the database too: an offer made by a process that died
        # still expires, exactly once (the expiry is a compare-and-set).
        timers.every(1.0, lambda: None if engine.sweep_expired() else None)
        background.append(_Stoppable(publisher, timers))
    return engine, background
