"""What the engine's mixins share: its parts, and the few methods one mixin calls on another."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from geoindex import GeoIndex, Neighbor
    from trips.area import ServiceArea
    from trips.fares import Tariff
    from trips.model import Trip
    from trips.surge import SurgePricer

    from .channel import OfferChannel
    from .clock import Clock, Timers
    from .engine import DispatchConfig, DriverEntry, Hooks
    from .eta import EtaModel
    from .model import DispatchRecord, DriverStatus, Offer


class EngineBase:
    uow_factory: Callable[..., Any]
    index: GeoIndex
    new_id: Callable[[], str]
    clock: Clock
    timers: Timers
    channel: OfferChannel
    eta: EtaModel
    config: DispatchConfig
    service_area: ServiceArea | None
    tariff: Tariff
    surge: SurgePricer | None
    hooks: Hooks
    directory: dict[str, DriverEntry]
    traces: Any  # LocalTraces or RedisTraces (dispatch/cluster.py)
    events: Any  # LocalEvents or RedisDriverEvents
    driver_rating: dict[str, float]
    _pending_batch: list[str]

    def dispatch(self, trip_id: str, only: list[tuple[float, Neighbor]] | None = None
                 ) -> Offer | None:
        raise NotImplementedError

    def get_trip(self, trip_id: str) -> Trip:
        raise NotImplementedError

    def directory_set(self, driver_id: str, status: DriverStatus, trip_id: str | None) -> None:
        raise NotImplementedError

    def surge_at(self, lat: float, lng: float) -> Decimal:
        raise NotImplementedError

    def _save_record(self, uow: Any, record: DispatchRecord) -> None:
        raise NotImplementedError

    def candidates(self, trip: Trip, exclude: set[str], record: DispatchRecord
                   ) -> list[tuple[float, Neighbor]]:
        raise NotImplementedError
