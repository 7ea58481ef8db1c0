"""What a run is made of, whatever the mode: its settings, the city, the demand to replay and
the one random generator every draw comes from; and how a finished run becomes a report."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dispatch.engine import DispatchConfig
from dispatch.eta import StraightLineEta
from roads import Router, load_road_network

from .city import City, default_city_path, load_city
from .demand import DemandPlan, build_demand
from .fleet import FleetConfig
from .metrics import Metrics, TripFacts
from .report import SimulationResult
from .riders import RiderConfig

POLICIES = ("greedy", "batched")


@dataclass
class SimConfig:
    city: str | None = None
    roads: str | None = None  # an OpenStreetMap extract: cars drive its routes
    demand: str | None = None
    demand_rate: float | None = None
    drivers: int = 1000
    duration_s: float = 3600.0
    policy: str = "greedy"
    seed: int = 0
    accept_prob: float = 0.9
    reposition: str = "stay"
    # Travel times: a model file, "straight-line", or None: the city's shipped model (NYC)
    eta_model: str | None = None
    tick_s: float = 4.0  # every driver reports its position this often
    drain_limit_s: float = 2 * 3600.0  # after the demand window: finish the open trips
    fleet: dict[str, Any] = field(default_factory=dict)  # other FleetConfig fields
    # Other DispatchConfig fields, such as the batched policy's batch_hold_s (engine mode: a
    # server in HTTP mode dispatches with its own RIDEHAIL_* settings).
    dispatch: dict[str, Any] = field(default_factory=dict)
    riders: dict[str, Any] = field(default_factory=dict)  # RiderConfig fields

    def __post_init__(self) -> None:
        if self.drivers < 0:
            raise ValueError(f"--drivers: must be >= 0, got {self.drivers}")
        if not self.duration_s > 0:
            raise ValueError(f"--duration: must be > 0, got {self.duration_s}")
        if self.demand_rate is not None and not self.demand_rate >= 0:
            raise ValueError(f"--demand-rate: must be >= 0, got {self.demand_rate}")
        if self.policy not in POLICIES:
            raise ValueError(f"--policy: must be one of {POLICIES}, got {self.policy!r}")
        if not 0.0 <= self.accept_prob <= 1.0:
            raise ValueError(f"--accept-prob: must be in [0, 1], got {self.accept_prob}")
        if not self.tick_s > 0:
            raise ValueError("tick_s: must be > 0")
        for name, value in self.dispatch.items():
            if name.startswith("batch_") and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"--{name.replace('_s', '').replace('_', '-')}: must be a "
                                 f"number >= 0, got {value}")

    def fleet_config(self) -> FleetConfig:
        return FleetConfig(drivers=self.drivers, accept_prob=self.accept_prob,
                           reposition=self.reposition, **self.fleet)

    def dispatch_config(self) -> DispatchConfig:
        return DispatchConfig(policy=self.policy, **self.dispatch)

    def rider_config(self) -> RiderConfig:
        return RiderConfig(**self.riders)


@dataclass
class Scenario:
    config: SimConfig
    city: City
    plan: DemandPlan
    rng: np.random.Generator
    router: Router | None = None  # the city's roads, when it has a road map


def prepare(config: SimConfig) -> Scenario:
    """Load the city, its roads and the demand (errors name the flag), seed the generator.
    With a road map and no city, the service area is the road network's convex hull."""
    router = None
    if config.roads:
        # Off the roads (a leg's end beyond the snap limit) dispatch ranks by the straight line.
        router = Router(load_road_network(config.roads), fallback=StraightLineEta())
    if config.city or router is None:
        city = load_city(Path(config.city) if config.city else default_city_path())
    else:
        city = City(router.network.name, router.network.outline())
    plan = build_demand(city, config.demand, duration_s=config.duration_s,
                        rate_per_hour=config.demand_rate, seed=config.seed)
    config.fleet_config()  # validate before any work
    config.dispatch_config()
    return Scenario(config, city, plan, np.random.default_rng(config.seed), router)


def build_result(sc: Scenario, metrics: Metrics, trips: list[TripFacts], empty_m: float,
                 loaded_m: float, mode: str, extra: dict[str, Any]) -> SimulationResult:
    kpis, waits, series = metrics.kpis(trips, empty_m, loaded_m)
    cfg = sc.config
    params = {k: v for k, v in asdict(cfg).items() if v not in (None, {})}
    params.update(mode=mode, city_name=sc.city.name, demand_source=sc.plan.source,
                  demand_format=sc.plan.format_name, demand_rows_read=sc.plan.rows_read)
    if sc.router is not None:
        net = sc.router.network
        params.update(road_network=net.name, road_nodes=net.n_nodes, road_edges=net.n_edges)
    params.update(extra)
    return SimulationResult(
        kpis=kpis, waits_s=waits, timeseries=series, cell_demand=dict(metrics.cell_demand),
        cell_supply=metrics.cell_supply(), city_outline=sc.city.outline(),
        title=f"ridehail simulation: {sc.city.name}, {cfg.drivers} drivers, {cfg.policy}",
        params=params, demand_rejected=dict(sc.plan.rejected),
    )
