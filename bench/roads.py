"""Road routing benchmark (issue 14): the shipped OpenStreetMap extracts loaded, routes and
pickup ETAs answered by the router against the straight-line model, and the simulator in
Aguascalientes with its cars on the roads against the same run driving straight lines.

Prints one JSON document: `summary` (the figures below), each extract's load, the router's
query times, how much longer the road is than the chord, and both simulation runs.

    .venv/bin/python bench/roads.py            # a few minutes of CPU
    .venv/bin/python bench/roads.py --quick    # a small smoke run (the test suite runs it)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402
from dispatch.eta import StraightLineEta  # noqa: E402
from ridehail.bootstrap import build_sim_engine  # noqa: E402
from ridehail.kernel.geo import haversine_m  # noqa: E402
from roads import Router, load_road_network  # noqa: E402
from simulator.city import data_dir  # noqa: E402
from simulator.engine_mode import EngineSimulation  # noqa: E402
from simulator.report import report_json  # noqa: E402
from simulator.scenario import SimConfig, prepare  # noqa: E402

ROADS = data_dir() / "roads"
EXTRACTS = ("west-oakland.osm.bz2", "aguascalientes.osm.pbf", "aguascalientes.osm.bz2")


def load_figures(repeats: int) -> dict[str, Any]:
    out = {}
    for name in EXTRACTS:
        times = []
        for _ in range(repeats):
            t = time.process_time()
            net = load_road_network(ROADS / name)
            times.append(time.process_time() - t)
        out[name] = {"nodes": net.n_nodes, "directed_edges": net.n_edges,
                     "road_km": round(net.total_km(), 2),
                     "load_cpu_ms": round(1000 * min(times), 1)}
    return out


def router_figures(pairs: int, seed: int) -> dict[str, Any]:
    """Random positions near Aguascalientes' roads: one route per pair with no tree cached
    (every target new), one from another start to each target (its tree cached), then
    dispatch's question, 10 candidates to one pickup, as it asks."""
    net = load_road_network(ROADS / "aguascalientes.osm.pbf")
    rng = np.random.default_rng(seed)
    k = rng.integers(0, net.n_nodes, 2 * pairs)
    lat = net.lat[k] + rng.normal(0, 0.0003, 2 * pairs)
    lng = net.lng[k] + rng.normal(0, 0.0003, 2 * pairs)
    straight = StraightLineEta()
    router = Router(net, fallback=straight)
    t = time.process_time()
    routes = [router.route(lat[i], lng[i], lat[pairs + i], lng[pairs + i]) for i in range(pairs)]
    route_ms = 1000 * (time.process_time() - t) / pairs
    t = time.process_time()  # another start to each target: its tree is cached, not the route
    for i in range(pairs):
        router.route(lat[(i + 1) % pairs], lng[(i + 1) % pairs], lat[pairs + i], lng[pairs + i])
    cached_ms = 1000 * (time.process_time() - t) / pairs
    fresh = Router(net, fallback=straight)
    cands = [(lat[(i * 10 + j) % (2 * pairs)], lng[(i * 10 + j) % (2 * pairs)])
             for i in range(pairs) for j in range(10)]
    t = time.process_time()
    for i in range(pairs):
        c = cands[i * 10:(i + 1) * 10]
        fresh.pickup_etas([a for a, _ in c], [b for _, b in c], lat[pairs + i],
                          lng[pairs + i], 0.0)
    etas_ms = 1000 * (time.process_time() - t) / pairs
    t = time.process_time()
    for i in range(pairs):
        c = cands[i * 10:(i + 1) * 10]
        straight.pickup_etas([a for a, _ in c], [b for _, b in c], lat[pairs + i],
                             lng[pairs + i], 0.0)
    straight_ms = 1000 * (time.process_time() - t) / pairs
    chord = [haversine_m(lat[i], lng[i], lat[pairs + i], lng[pairs + i]) for i in range(pairs)]
    long_enough = [i for i in range(pairs) if chord[i] > 200]
    detour = [routes[i].metres / chord[i] for i in long_enough]
    slower = [routes[i].seconds / straight.travel(lat[i], lng[i], lat[pairs + i],
                                                  lng[pairs + i])[0] for i in long_enough]
    return {
        "network": "aguascalientes", "pairs": pairs,
        "route_uncached_cpu_ms": round(route_ms, 3),
        "route_tree_cached_cpu_ms": round(cached_ms, 3),
        "pickup_etas_10_candidates_cpu_ms": round(etas_ms, 3),
        "straight_line_pickup_etas_10_candidates_cpu_ms": round(straight_ms, 4),
        "road_over_chord_metres_median": round(statistics.median(detour), 3),
        "road_over_chord_metres_p90": round(float(np.percentile(detour, 90)), 3),
        "router_over_straight_line_seconds_median": round(statistics.median(slower), 3),
    }


def sim_run(roads: bool, drivers: int, rate: float, duration: float, seed: int
            ) -> dict[str, Any]:
    """Aguascalientes, synthetic hotspot demand; with roads, or the same city (the roads'
    hull) and demand driving straight lines."""
    cfg = SimConfig(roads=str(ROADS / "aguascalientes.osm.pbf"), drivers=drivers,
                    demand_rate=rate, duration_s=duration, seed=seed)
    sc = prepare(cfg)
    if not roads:
        sc.router = None  # same city, demand and seed: only the legs differ
    sim = EngineSimulation(sc, build_sim_engine)
    result = sim.run()
    k = report_json(result)["kpis"]
    return {"roads": roads, "requests": k["requests"], "served_pct": k["served_pct"],
            "mean_wait_s": k["pickup_wait_mean_s"], "p90_wait_s": k["pickup_wait_p90_s"],
            "utilisation_pct": k["driver_utilisation_pct"], "empty_km": k["empty_km"],
            "loaded_km": k["loaded_km"], "cpu_s": round(sim.cpu_s, 3),
            "speedup_vs_realtime_cpu": round(duration / sim.cpu_s, 2),
            **{key: result.params[key] for key in ("routed_legs", "off_network_legs")
               if key in result.params}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    load = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: say how busy it was
    machine = describe(load)  # and how fast it is (bench/machine.py)
    if args.quick:
        repeats, pairs, drivers, rate, duration = 1, 50, 20, 200.0, 600.0
    else:
        repeats, pairs, drivers, rate, duration = 3, 1000, 200, 1500.0, 3600.0
    loads = load_figures(repeats)
    router = router_figures(pairs, args.seed)
    straight = sim_run(False, drivers, rate, duration, args.seed)
    routed = sim_run(True, drivers, rate, duration, args.seed)
    doc = {
        "benchmark": "roads",
        "machine": machine,
        "config": {"extracts": list(EXTRACTS), "sim_city": "aguascalientes (the roads' hull)",
                   "drivers": drivers, "demand": "hotspots", "demand_rate": rate,
                   "duration_s": duration, "seed": args.seed, "timing": "process CPU time"},
        "summary": {
            "aguascalientes_load_cpu_ms": loads["aguascalientes.osm.pbf"]["load_cpu_ms"],
            "route_uncached_cpu_ms": router["route_uncached_cpu_ms"],
            "pickup_etas_10_candidates_cpu_ms": router["pickup_etas_10_candidates_cpu_ms"],
            "road_over_chord_metres_median": router["road_over_chord_metres_median"],
            "router_over_straight_line_seconds_median":
                router["router_over_straight_line_seconds_median"],
            "sim_speedup_vs_realtime_cpu_roads": routed["speedup_vs_realtime_cpu"],
            "sim_speedup_vs_realtime_cpu_straight": straight["speedup_vs_realtime_cpu"],
            "sim_cpu_ratio_roads_over_straight": round(routed["cpu_s"] / straight["cpu_s"], 3),
            "mean_wait_s_roads": routed["mean_wait_s"],
            "mean_wait_s_straight": straight["mean_wait_s"],
        },
        "extracts": loads,
        "router": router,
        "simulation": {"straight": straight, "roads": routed},
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
