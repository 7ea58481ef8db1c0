"""bench/roads.py in its reduced mode: one JSON document whose summary holds the router's and
the road simulation's figures, the roads run driving routed legs and the other none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_roads_benchmark_runs_quick() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "roads.py"), "--quick"],
                         capture_output=True, text=True, timeout=240, check=True, cwd=ROOT)
    doc = json.loads(out.stdout)
    s = doc["summary"]
    assert s["route_uncached_cpu_ms"] > 0 and s["pickup_etas_10_candidates_cpu_ms"] > 0
    assert s["road_over_chord_metres_median"] >= 1.0
    assert s["sim_speedup_vs_realtime_cpu_roads"] > 0
    sims = doc["simulation"]
    assert sims["roads"]["routed_legs"] > 0 and sims["roads"]["off_network_legs"] == 0
    assert "routed_legs" not in sims["straight"]
    assert sims["roads"]["requests"] == sims["straight"]["requests"] > 0
    assert doc["extracts"]["aguascalientes.osm.pbf"]["nodes"] == (
        doc["extracts"]["aguascalientes.osm.bz2"]["nodes"])
