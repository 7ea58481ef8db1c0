"""City-scale simulator benchmark: NYC, 10,000 drivers, one simulated hour of >= 20,000 trip
requests replayed from the yellow-cab sample, engine mode, greedy vs batched on the same seed.

Prints one JSON document: `summary` (speed vs real time and both policies' KPIs), each run's
full KPIs, and a cProfile of a shorter run showing where the wall time goes.

    .venv/bin/python bench/simulate.py            # the full run (a few minutes)
    .venv/bin/python bench/simulate.py --quick    # a small smoke run
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402
from ridehail.bootstrap import build_sim_engine  # noqa: E402
from simulator.city import data_dir  # noqa: E402
from simulator.engine_mode import EngineSimulation  # noqa: E402
from simulator.report import report_json  # noqa: E402
from simulator.scenario import SimConfig, prepare  # noqa: E402

DEMAND = data_dir() / "nyc" / "yellow_taxi_2016-01_sample.csv"
# Where the wall time goes: the engine's use cases and the index, by their cumulative time.
AREAS = {
    "location_ingest (DriverDirectory.update_location_columns)": (
        "dispatch/drivers.py", "update_location_columns"),
    "index_publish (GeoIndex.publish)": ("geoindex/index.py", "publish"),
    "request_trip (incl. candidate search)": ("dispatch/engine.py", "request_trip"),
    "candidates (index search)": ("dispatch/matcher.py", "candidates"),
    "accept_offer": ("dispatch/matcher.py", "accept_offer"),
    "reject_offer (incl. redispatch)": ("dispatch/matcher.py", "reject_offer"),
    "run_batch (batched policy)": ("dispatch/batching.py", "run"),
    "complete (incl. fare from trace)": ("dispatch/lifecycle.py", "complete"),
    "final_fare (trips.fares)": ("trips/fares.py", "final_fare"),
    "arrive + start": ("dispatch/lifecycle.py", "arrive|start"),
    "memory unit of work enter/exit": ("ridehail/kernel/units.py", "__enter__|__exit__"),
    "row copies (ridehail.kernel.versioned._copy)": ("ridehail/kernel/versioned.py", "_copy"),
}


def run_one(cfg: SimConfig) -> dict[str, Any]:
    sc = prepare(cfg)
    sim = EngineSimulation(sc, build_sim_engine)
    result = sim.run()
    doc = report_json(result)
    sim_s = float(cfg.duration_s)
    return {
        "policy": cfg.policy,
        "requests": len(sc.plan.requests),
        "wall_s": round(sim.wall_s, 3),
        "simulated_s_in_window": sim_s,
        "simulated_s_total": round(sim.clock.now(), 1),  # with the drain of open trips
        "speedup_vs_realtime": round(sim_s / sim.wall_s, 2),
        "cpu_s": round(sim.cpu_s, 3),
        "speedup_vs_realtime_cpu": round(sim_s / sim.cpu_s, 2),
        "events": sim.clock.events_run,
        "kpis": doc["kpis"],
        "mean_wait_s": doc["pickup_waits"]["mean_s"],
    }


def profile(cfg: SimConfig, top: int = 20) -> dict[str, Any]:
    sc = prepare(cfg)
    sim = EngineSimulation(sc, build_sim_engine)
    prof = cProfile.Profile()
    prof.enable()
    sim.run()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())  # tottime over all functions = profiled wall

    def where(key: tuple[str, int, str]) -> str:
        path, line, name = key
        short = path.replace(str(ROOT) + os.sep, "")
        if ".venv" in short or "site-packages" in short:
            short = "site-packages/" + short.split("site-packages/")[-1]
        return f"{short}:{line}({name})"

    by_tot = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    areas: dict[str, float] = {}
    for label, (file, names) in AREAS.items():
        wanted = set(names.split("|"))
        cum = sum(v[3] for (path, _l, name), v in raw.items()
                  if path.endswith(file) and name in wanted)
        areas[label] = round(100.0 * cum / total, 1) if total else 0.0
    return {
        "run": {"drivers": cfg.drivers, "duration_s": cfg.duration_s,
                "demand_rate": cfg.demand_rate, "policy": cfg.policy},
        "profiled_wall_s": round(total, 2),
        "share_of_wall_pct_by_area (cumulative, areas overlap)": areas,
        "top_by_own_time": [
            {"function": where(k), "calls": v[1], "own_s": round(v[2], 3),
             "own_pct": round(100.0 * v[2] / total, 1), "cum_s": round(v[3], 3)}
            for k, v in by_tot
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--eta-model", default=None,
                    help="travel times: a model file, or straight-line (the fleet at x 1.3 and "
                         "the hour's speed, dispatch at 8 m/s); default: NYC's shipped model")
    args = ap.parse_args()
    load = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: say how busy it was
    machine = describe(load)  # and how fast it is (bench/machine.py)
    if args.quick:
        drivers, rate, duration, prof_duration = 1000, 2000.0, 600.0, 300.0
    else:
        drivers, rate, duration, prof_duration = 10_000, 20_000.0, 3600.0, 600.0
    base = dict(demand=str(DEMAND), demand_rate=rate, drivers=drivers, seed=args.seed,
                eta_model=args.eta_model)
    configs = [SimConfig(duration_s=duration, policy=p, **base)  # type: ignore[arg-type]
               for p in ("greedy", "batched")]
    # The two policies run side by side, one per core; each one's speed is its own wall time.
    with ProcessPoolExecutor(max_workers=2) as pool:
        greedy, batched = pool.map(run_one, configs)
    prof = None if args.no_profile else profile(
        SimConfig(duration_s=prof_duration, policy="greedy", **base))  # type: ignore[arg-type]

    def brief(r: dict[str, Any]) -> dict[str, Any]:
        k = r["kpis"]
        return {"served_pct": k["served_pct"], "mean_wait_s": round(r["mean_wait_s"], 3),
                "p90_wait_s": k["pickup_wait_p90_s"],
                "utilisation_pct": k["driver_utilisation_pct"],
                "no_driver_pct": k["no_driver_pct"], "wall_s": r["wall_s"],
                "speedup_vs_realtime": r["speedup_vs_realtime"],
                "speedup_vs_realtime_cpu": r["speedup_vs_realtime_cpu"]}

    g, b = brief(greedy), brief(batched)
    wait_change = 100.0 * (b["mean_wait_s"] - g["mean_wait_s"]) / g["mean_wait_s"]
    doc = {
        "benchmark": "simulate",
        "machine": machine,
        "config": {"city": "NYC boroughs", "demand": DEMAND.name, **{k: v for k, v in base.items()
                                                                    if k != "demand"},
                   "duration_s": duration, "mode": "engine", "tick_s": 4.0,
                   "runs": "greedy and batched in two processes at once (one per core)"},
        "summary": {
            "speedup_vs_realtime": min(g["speedup_vs_realtime"], b["speedup_vs_realtime"]),
            "speedup_vs_realtime_cpu": min(g["speedup_vs_realtime_cpu"],
                                           b["speedup_vs_realtime_cpu"]),
            "target_speedup": 120.0,
            "machine_python_mops": machine["python_mops"],
            "drivers": drivers,
            "requests": greedy["requests"],
            "greedy": g,
            "batched": b,
            "batched_mean_wait_change_pct": round(wait_change, 2),
            "batched_target_met": wait_change <= -10.0 and b["served_pct"] >= g["served_pct"],
        },
        "runs": {"greedy": greedy, "batched": batched},
        "profile": prof,
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
