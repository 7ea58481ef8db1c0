"""Time as a dependency: the API runs on the wall clock; the simulator passes its own, so the
same rules run an hour in seconds."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (or since the simulation started)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()
