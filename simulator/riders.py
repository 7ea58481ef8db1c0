"""Simulated riders: how long each waits for a driver before giving up, and how long boarding
takes once the driver is there.

Patience is log-normal (most riders wait a minute or two, a few much longer), drawn per rider
from the run's generator. A rider whose trip is still `requested` (no driver has accepted)
when patience runs out cancels it through the engine, like the app's cancel button. In HTTP
mode riders are accounts on the server; `RiderPool` hands them out, one open trip each.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class RiderConfig:
    patience_median_s: float = 150.0
    patience_sigma: float = 0.5
    patience_min_s: float = 20.0
    boarding_s: tuple[float, float] = (10.0, 60.0)

    def __post_init__(self) -> None:
        if self.patience_median_s <= 0 or self.patience_min_s < 0:
            raise ValueError("patience: must be > 0")


class Riders:
    def __init__(self, config: RiderConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng

    def patience_s(self) -> float:
        c = self.config
        drawn = c.patience_median_s * float(np.exp(self.rng.normal(0.0, c.patience_sigma)))
        return max(c.patience_min_s, drawn)

    def boarding_s(self) -> float:
        lo, hi = self.config.boarding_s
        return float(self.rng.uniform(lo, hi))


class RiderPool:
    """The HTTP mode's rider accounts and who is riding. A rider has at most one open trip
    (the server refuses a second with 409), so a request takes a free rider, and the rider is
    free again once that trip has ended. Free riders are used first in, first out, so the
    accounts take turns. Not thread-safe: the caller holds its lock."""

    def __init__(self) -> None:
        self.free: deque[str] = deque()
        self.trip_of: dict[str, str] = {}  # rider -> open trip
        self.rider_of: dict[str, str] = {}  # open trip -> rider
        self.size = 0

    def add(self, rider: str, *, free: bool = True) -> None:
        """A new account: free, or (free=False) already reserved by the caller."""
        self.size += 1
        if free:
            self.free.append(rider)

    def take(self) -> str | None:
        """A free rider, now reserved for one request (None: every rider is busy)."""
        return self.free.popleft() if self.free else None

    def riding(self, rider: str, trip: str) -> None:
        """The reserved rider's request made `trip`: busy until it ends."""
        self.trip_of[rider] = trip
        self.rider_of[trip] = rider

    def release(self, rider: str) -> None:
        """The reserved rider's request made no trip: free again."""
        self.free.append(rider)

    def retire(self, rider: str) -> None:
        """The server says this rider has an open trip we do not know of (say, a request
        whose answer was lost): never use the account again."""
        self.size -= 1

    def ended(self, trip: str) -> None:
        """`trip` reached a terminal state: its rider is free again (once)."""
        rider = self.rider_of.pop(trip, None)
        if rider is not None and self.trip_of.get(rider) == trip:
            del self.trip_of[rider]
            self.free.append(rider)

    def busy(self) -> int:
        return len(self.trip_of)
