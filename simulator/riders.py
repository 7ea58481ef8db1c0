"""Simulated riders: how long each waits for a driver before giving up, and how long boarding
takes once the driver is there.

Patience is log-normal (most riders wait a minute or two, a few much longer), drawn per rider
from the run's generator. A rider whose trip is still `requested` (no driver has accepted)
when patience runs out cancels it through the engine, like the app's cancel button.
"""

from __future__ import annotations

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
