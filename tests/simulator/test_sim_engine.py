"""The simulator in engine mode: determinism, conservation, the clock, the CLI's bad input."""

from __future__ import annotations

import gc
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ridehail.bootstrap import build_sim_engine
from ridehail.cli import main
from simulator.cli import parse_duration
from simulator.clock import SimClock
from simulator.engine_mode import EngineSimulation
from simulator.fleet import Fleet
from simulator.metrics import TripFacts, conservation_violations
from simulator.scenario import SimConfig, prepare

SMALL = ["--drivers", "25", "--duration", "5m", "--demand-rate", "300", "--no-progress"]


def run_cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["simulate", *args])
    return res.exit_code, res.output


def test_same_seed_gives_the_same_report(tmp_path: Path) -> None:
    for name in ("a", "b"):
        code, out = run_cli(*SMALL, "--seed", "7", "--out", str(tmp_path / name))
        assert code == 0, out
    a = (tmp_path / "a" / "report.json").read_text()
    assert a == (tmp_path / "b" / "report.json").read_text()
    doc = json.loads(a)
    assert doc["kpis"]["requests"] > 0
    assert doc["params"]["checks"] == "passed"
    assert (tmp_path / "a" / "report.html").read_text().startswith("<!DOCTYPE html>")
    code, _ = run_cli(*SMALL, "--seed", "8", "--out", str(tmp_path / "c"))
    assert code == 0
    assert (tmp_path / "c" / "report.json").read_text() != a


# The batched policy's settings against long pickups: trips held for later windows, a growing
# ETA cap, forward dispatch to drivers about to drop off; idle drivers rebalancing.
TIGHT_BATCHED = {"batch_hold_s": 120.0, "batch_eta_cap_s": 90.0, "batch_forward_s": 120.0}


@pytest.mark.parametrize(("policy", "dispatch", "reposition"), [
    ("greedy", {}, "random"), ("batched", {}, "random"),
    ("batched", TIGHT_BATCHED, "rebalance")])
def test_every_request_ends_once_and_no_driver_holds_two_trips(
        policy: str, dispatch: dict[str, float], reposition: str) -> None:
    # Few drivers, some declining: offers are rejected, riders give up, trips go unserved.
    cfg = SimConfig(drivers=15, duration_s=900, demand_rate=300, seed=3, policy=policy,
                    accept_prob=0.7, reposition=reposition, dispatch=dispatch)
    sim = EngineSimulation(prepare(cfg), build_sim_engine)
    result = sim.run()
    trips = sim.trip_facts()
    assert len(trips) == len(sim.sc.plan.requests) == result.kpis["requests"]
    assert conservation_violations(trips, sim.metrics.finished,
                                   sim.metrics.completed_calls) == []
    states = Counter(t.state for t in trips)
    assert set(states) <= {"completed", "cancelled", "no_driver_found"}
    assert states["completed"] > 0
    assert states["completed"] == sum(sim.metrics.completed_calls.values())
    assert sim.metrics.offers_made > sim.metrics.offers_accepted  # some were declined
    k = result.kpis
    total = (k["served_pct"] or 0) + (k["no_driver_pct"] or 0) + (k["rider_cancel_pct"] or 0)
    assert total == pytest.approx(100.0, abs=0.01)
    assert 0 < (k["driver_utilisation_pct"] or 0) <= 100


def test_conservation_check_catches_violations() -> None:
    trips = [TripFacts("1", 0.0, "completed", "d1", 5.0, 50.0, 900, None, (("d1", 1.0, 50.0),)),
             TripFacts("2", 10.0, "completed", "d1", 20.0, 60.0, 800, None,
                       (("d1", 12.0, 60.0),)),
             TripFacts("3", 10.0, "requested")]
    bad = conservation_violations(trips, Counter({"1": 1, "2": 2}), Counter({"1": 1, "2": 2}))
    text = " | ".join(bad)
    assert "driver d1 held trips 1 and 2 at once" in text
    assert "trip 2: trip_finished fired 2 times" in text
    assert "trip_completed fired 2 times" in text
    assert "trip 3 ended the run requested" in text


def test_clock_runs_events_in_time_then_scheduling_order() -> None:
    clock = SimClock()
    seen: list[str] = []
    def first() -> None:
        seen.append("a")
        clock.call_at(5.0, lambda: seen.append("c"))  # same time as "b", scheduled later

    clock.call_at(5.0, lambda: seen.append("b"))
    clock.call_at(1.0, first)
    clock.call_at(9.0, lambda: seen.append("late"))
    clock.run_until(5.0)
    assert seen == ["a", "b", "c"]
    assert clock.now() == 5.0
    clock.call_at(2.0, lambda: seen.append("past"))  # never runs before "now"
    clock.run_until(10.0)
    assert seen[3:] == ["past", "late"]


@pytest.mark.parametrize(("text", "seconds"),
                         [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("45", 45)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("args", "flag"), [
    (["--drivers", "-5"], "--drivers"),
    (["--city", "/no/such/city.geojson"], "--city"),
    (["--duration", "ten minutes"], "--duration"),
    (["--demand-rate", "-1"], "--demand-rate"),
    (["--accept-prob", "1.5"], "--accept-prob"),
    (["--mode", "http"], "--url"),
    (["--batch-hold", "-1"], "--batch-hold"),
    (["--batch-eta-cap", "-30"], "--batch-eta-cap"),
])
def test_bad_input_is_exit_2_naming_the_flag(args: list[str], flag: str) -> None:
    code, out = run_cli(*args, "--no-progress")
    assert code == 2
    assert flag in out


def test_malformed_demand_csv_names_the_flag(tmp_path: Path) -> None:
    bad = tmp_path / "trips.csv"
    bad.write_text("when,where\nyesterday,here\n")
    code, out = run_cli("--demand", str(bad), "--no-progress", "--out", str(tmp_path / "o"))
    assert code == 2
    assert "--demand" in out and "unknown demand CSV header" in out
    notgeo = tmp_path / "city.geojson"
    notgeo.write_text("{not json")
    code, out = run_cli("--city", str(notgeo), "--no-progress")
    assert code == 2 and "--city" in out


def test_rebalancing_heads_for_recently_unserved_requests() -> None:
    """Too few drivers for the demand: requests go unserved, and idle drivers of the
    rebalance policy drive toward where they were (without it, they stay put)."""
    moved = {}
    for reposition in ("stay", "rebalance"):
        cfg = SimConfig(drivers=6, duration_s=1200, demand_rate=400, seed=5,
                        reposition=reposition, fleet={"reposition_every_s": 60.0})
        sim = EngineSimulation(prepare(cfg), build_sim_engine)
        sim.run()
        assert sim.unserved, "the scenario must leave requests unserved"
        moved[reposition] = sim.fleet.empty_m
        unserved_ids = {id(r) for _at, r in sim.unserved}
        assert unserved_ids <= {id(sim.request_of[t]) for t in sim.trip_ids
                                if sim.engine.get_trip(t).state.value != "completed"}
    assert moved["rebalance"] > moved["stay"]


def test_the_rebalance_target_is_a_recently_unserved_pickup() -> None:
    sc = prepare(SimConfig(drivers=1, duration_s=600, demand_rate=60, seed=1,
                           reposition="rebalance"))
    fleet = Fleet(sc.config.fleet_config(), sc.city, np.random.default_rng(0))
    fleet.place(sc.plan.requests)
    assert fleet.reposition_target(0, 0.0, []) is None  # nothing unserved: stay
    r = sc.plan.requests[0]
    assert fleet.reposition_target(0, 0.0, [r]) == (r.pickup_lat, r.pickup_lng)


def test_a_run_pauses_the_garbage_collector_and_gives_it_back() -> None:
    cfg = SimConfig(drivers=10, duration_s=120, demand_rate=300, seed=1)
    sim = EngineSimulation(prepare(cfg), build_sim_engine)
    during: list[bool] = []
    sim.clock.call_at(60.0, lambda: during.append(gc.isenabled()))
    assert gc.isenabled()
    sim.run()
    assert during == [False]
    assert gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        EngineSimulation(prepare(cfg), build_sim_engine).run()
        assert not gc.isenabled()
    finally:
        gc.enable()
