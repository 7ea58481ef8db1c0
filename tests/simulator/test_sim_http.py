"""The simulator in HTTP mode against a real server (temporary SQLite database)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from simulator.http_mode import HttpSimulation
from simulator.scenario import SimConfig, prepare
from tests.conftest import ROOT, start_server


def test_a_small_city_runs_through_the_api(tmp_path: Path) -> None:
    env = {"RIDEHAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'sim.db'}",
           "RIDEHAIL_VAR_DIR": str(tmp_path)}
    token = subprocess.run(
        [sys.executable, "-m", "ridehail.cli", "accounts", "create-service", "simulator"],
        env={**os.environ, **env}, cwd=ROOT, check=True, capture_output=True,
        text=True).stdout.strip()
    server = start_server(env)
    try:
        cfg = SimConfig(drivers=4, duration_s=180, demand_rate=100, seed=2,
                        drain_limit_s=1200)
        sim = HttpSimulation(prepare(cfg), server.url, speed=240.0, service_token=token)
        result = sim.run()
        states = Counter(sim._facts(t).state for t in sim.trips)
    finally:
        server.stop()
    k = result.kpis
    assert result.params["mode"] == "http"
    # Every request reached the server and ended in a terminal state (run() checks it, and
    # raises ConservationError otherwise); some were served by the simulated drivers.
    assert k["requests"] == len(sim.trips) > 0
    assert set(states) <= {"completed", "cancelled", "no_driver_found"}, states
    assert states["completed"] > 0, (k, result.params)
    assert int(k["offers"] or 0) >= int(k["completed"] or 0) > 0
    assert not [e for e in result.params["http_errors"] if " 5" in e], result.params
