"""The simulator's travel times (simulator/travel.py): the learned model moves the fleet by the
hour, dispatch predicts with the same model, and the report says how far its pickup ETAs were
from the drives the drivers took."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dispatch.eta import StraightLineEta
from dispatch.learned_eta import SHIPPED, load
from ridehail.bootstrap import build_sim_engine
from ridehail.cli import main
from simulator.engine_mode import EngineSimulation
from simulator.scenario import SimConfig, prepare
from simulator.travel import HourlySpeed, SimTime, run_start_utc_s

DEMAND = str(Path(__file__).resolve().parents[2] / "data" / "nyc" /
             "yellow_taxi_2016-01_sample.csv")


def _run(eta_model: str | None) -> EngineSimulation:
    cfg = SimConfig(drivers=40, duration_s=600, demand=DEMAND, demand_rate=300, seed=2,
                    eta_model=eta_model)
    sim = EngineSimulation(prepare(cfg), build_sim_engine)
    sim.run()
    return sim


def test_nyc_runs_on_the_shipped_model_and_report_the_pickup_eta_error() -> None:
    sim = _run(None)
    assert isinstance(sim.engine.eta, SimTime) and sim.fleet.travel is sim.engine.eta
    assert sim.fleet.spread > 0
    k = sim.result().kpis
    assert k["pickup_eta_pairs"] and k["pickup_eta_pairs"] > 5
    assert k["pickup_eta_median_abs_pct_error"] is not None
    # Same model for both sides, a noisy drive: the median ratio sits near 1, not at 1/1.6.
    assert 0.7 < k["pickup_eta_median_predicted_over_actual"] < 1.4


def test_the_straight_lines_remain_on_request() -> None:
    sim = _run("straight-line")
    assert isinstance(sim.engine.eta, StraightLineEta)
    assert isinstance(sim.fleet.travel, HourlySpeed) and sim.fleet.spread == 0
    # Dispatch's 8 m/s against the fleet's hourly speed (6 m/s at 08:00): optimistic.
    assert sim.result().kpis["pickup_eta_median_predicted_over_actual"] < 0.9


def test_simulated_time_is_the_run_start_in_the_city() -> None:
    model = load(SHIPPED["nyc"])
    start = run_start_utc_s(model.timezone, 8.0)
    assert start == 1_452_690_000.0  # 2016-01-13 08:00 in New York is 13:00 UTC
    timed = SimTime(model, start)
    a, b = (40.7580, -73.9855), (40.7061, -74.0087)
    assert timed.travel(*a, *b, 3600.0) == model.travel(*a, *b, start + 3600.0)


def test_a_bad_model_file_names_the_flag(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"nope")
    res = CliRunner().invoke(main, ["simulate", "--drivers", "5", "--duration", "2m",
                                    "--no-progress", "--eta-model", str(junk),
                                    "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--eta-model" in res.output and "not an ETA model" in res.output
