"""The simulator in HTTP mode against a real server (temporary SQLite database)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.http_mode import HttpSimulation
from simulator.scenario import SimConfig, prepare
from tests.conftest import ROOT, start_server


@contextlib.contextmanager
def server_with_service_token(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, service token) of a fresh server on SQLite in `tmp_path`."""
    env = {"RIDEHAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'sim.db'}",
           "RIDEHAIL_VAR_DIR": str(tmp_path)}
    token = subprocess.run(
        [sys.executable, "-m", "ridehail.cli", "accounts", "create-service", "simulator"],
        env={**os.environ, **env}, cwd=ROOT, check=True, capture_output=True,
        text=True).stdout.strip()
    server = start_server(env)
    try:
        yield server.url, token
    finally:
        server.stop()


def test_a_small_city_runs_through_the_api(tmp_path: Path) -> None:
    with server_with_service_token(tmp_path) as (url, token):
        cfg = SimConfig(drivers=4, duration_s=180, demand_rate=100, seed=2,
                        drain_limit_s=1200)
        sim = HttpSimulation(prepare(cfg), url, speed=240.0, service_token=token)
        result = sim.run()
        states = Counter(sim._facts(t).state for t in sim.trips)
    k = result.kpis
    assert result.params["mode"] == "http"
    # Every request reached the server and ended in a terminal state (run() checks it, and
    # raises ConservationError otherwise); some were served by the simulated drivers.
    assert k["requests"] == len(sim.trips) > 0
    assert set(states) <= {"completed", "cancelled", "no_driver_found"}, states
    assert states["completed"] > 0, (k, result.params)
    assert int(k["offers"] or 0) >= int(k["completed"] or 0) > 0
    assert not [r for r in result.params["http_refusals"] if " 5" in r], result.params


@pytest.mark.slow
def test_the_fleet_rides_at_the_configured_rate(tmp_path: Path) -> None:
    """Half an hour at 120 ride requests an hour, 40 drivers, 120x real time: every request
    becomes a trip (riders take turns, one open trip each), most are assigned to the fleet's
    drivers and driven to the end, and the report counts what happened."""
    rate, duration_s = 120.0, 1800.0
    with server_with_service_token(tmp_path) as (url, token):
        cfg = SimConfig(drivers=40, duration_s=duration_s, demand_rate=rate, seed=3,
                        drain_limit_s=3600)
        sc = prepare(cfg)
        planned = len(sc.plan.requests)
        sim = HttpSimulation(sc, url, speed=120.0, service_token=token)
        result = sim.run()
        requested_at = [sim._facts(t).requested_at for t in sim.trips]
    counts, refusals = result.params["http_counts"], result.params["http_refusals"]
    why = (counts, refusals)
    # The demand plan is the configured rate (Poisson: the seed fixes the draw), and the
    # fleet sent all of it: no request was refused, least of all for a busy rider.
    assert abs(planned - rate * duration_s / 3600) <= 0.25 * rate * duration_s / 3600
    assert counts["requests"] == counts["created"] == planned, why
    assert sim.api.refusals.matching("open trip") == 0, why
    # The server stamped the requests inside the demand window (in simulated time), so the
    # rate it saw is the configured one.
    assert len(requested_at) == planned
    assert max(requested_at) <= duration_s * 1.1, why
    # Most trips were matched with a fleet driver and driven to the end; every trip ended.
    assert counts["assigned"] >= 0.6 * planned, why
    assert counts["completed"] >= 0.9 * counts["assigned"], why
    assert counts["open"] == 0, why
    assert (counts["completed"] + counts["cancelled"] + counts["no_driver_found"]
            == planned), why
    # Riders took turns: fewer accounts than trips.
    assert counts["riders"] < planned, why
    assert result.kpis["completed"] == counts["completed"], why


def test_websocket_drivers_get_offers_pushed_and_drive_trips(tmp_path: Path) -> None:
    """Half the fleet on the driver WebSocket: their offers arrive as frames (they never poll)
    and their locations go up as frames only, so a trip a WebSocket driver was assigned and
    completed proves both: dispatch found them where their frames put them, and they heard
    of the offer by push. The other half polls as before, in the same run."""
    with server_with_service_token(tmp_path) as (url, token):
        cfg = SimConfig(drivers=8, duration_s=600, demand_rate=180, seed=5,
                        drain_limit_s=3600)
        sim = HttpSimulation(prepare(cfg), url, speed=240.0, service_token=token,
                             ws_share=0.5)
        result = sim.run()
        facts = [sim._facts(t) for t in sim.trips]
    counts, ws = result.params["http_counts"], result.params["ws_channel"]
    why = (counts, ws, result.params["http_refusals"])
    ws_ids = {sim.fleet.ids[i] for i in sim.ws_index}
    assert sim.ws_index == {1, 3, 5, 7} and counts["drivers_ws"] == counts["drivers_poll"] == 4
    assert ws["drivers"] == 4 and ws["connects"] >= 4, why
    # Offers reached the WebSocket drivers by push, and the pollers by polling.
    assert counts["offers_ws"] == ws["offers"] > 0, why
    assert counts["offers_poll"] > 0, why
    # WebSocket drivers completed trips: dispatch saw their frame-borne locations, and their
    # drop-off point was acked on the socket before `complete` (no fallback to POST).
    by_ws = [f for f in facts if f.state == "completed" and f.driver_id in ws_ids]
    assert by_ws, why
    assert ws["locations"] > 0 and ws["acks"] >= ws["locations"] - ws.get("errors", 0), why
    assert counts.get("ws_dropoff_by_post", 0) == 0 and "errors" not in ws, why
    assert not [r for r in result.params["http_refusals"] if "/ws" in r], why
