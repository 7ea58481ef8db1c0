"""What dispatch needs from the outside, as Protocols: the embedded mode plugs in the in-process
twins, the scaled mode the Redis ones (`dispatch/cluster.py`, wired in `ridehail/scaled.py`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

Point = tuple[float, float, float]  # (ts, lat, lng)

# What a use case opens around its announcements after a commit (driver events, demand,
# wake-ups): the scaled mode sends them to Redis in one round trip when it closes
# (`dispatch.cluster.BatchedRedis.batch`); the embedded mode has nothing to send.
Announcing = Callable[[], AbstractContextManager[None]]


class DriverEvents(Protocol):
    """Announces a committed status change, with the driver row's version after it, to the
    other API processes (best effort)."""

    def announce(self, driver_id: str, status: str, vehicle_class: str | None,
                 trip_id: str | None, version: int) -> None: ...


class DemandEvents(Protocol):
    """Announces an accepted trip request (surge demand) to the other API processes, so each
    prices surge on the whole city's demand, not its own share (best effort)."""

    def announce(self, lat: float, lng: float, ts: float) -> None: ...


class TraceStore(Protocol):
    """The on-trip driver's positions per trip, for the meter, as (n, 3) float arrays of
    (ts, lat, lng) rows: a trip's few hundred points are no Python objects of their own."""

    def add(self, trip_ids: list[str], points: NDArray[np.float64]) -> None:
        """Row i of `points` is a position of trip `trip_ids[i]`, in arrival order."""
        ...

    def points(self, trip_id: str) -> NDArray[np.float64]: ...

    def drop(self, trip_id: str) -> None: ...


@dataclass
class Hooks:
    """Side effects the wiring plugs in (Celery in the API, counters in the simulator); each
    runs after its change committed."""

    trip_completed: Callable[[str], None] = lambda trip_id: None
    trip_finished: Callable[[str, str], None] = lambda trip_id, state: None
    offer_made: Callable[[Any], None] = lambda offer: None
