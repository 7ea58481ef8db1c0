"""bench/dispatch_quality.py in its reduced mode: one small fleet on five minutes of real NYC
demand, every policy of the sweep, one JSON document with the issue's summary keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = ("batched_wait_change_pct_tight", "served_pct_tight_greedy",
                "served_pct_tight_batched", "utilisation_pct_tight")


def test_the_reduced_sweep_reports_every_policy_and_the_summary() -> None:
    proc = subprocess.run([sys.executable, "bench/dispatch_quality.py", "--quick",
                           "--workers", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    summary, runs = doc["summary"], doc["runs"]
    for key in SUMMARY_KEYS:
        assert isinstance(summary[key], float), key
    assert {r["policy"] for r in runs} == set(doc["config"]["policies"])
    by = {r["policy"]: r for r in runs if r["drivers"] == summary["tight_drivers"]}
    greedy, batched = by["greedy"], by["batched"]
    # The summary is the tight point's runs, compared.
    assert summary["utilisation_pct_tight"] == greedy["utilisation_pct"] >= 75.0
    assert summary["served_pct_tight_batched"] == batched["served_pct"]
    change = 100 * (batched["mean_wait_s"] - greedy["mean_wait_s"]) / greedy["mean_wait_s"]
    assert abs(summary["batched_wait_change_pct_tight"] - change) < 0.01
    # The batched settings reach the engine: held trips wait for drivers instead of ending
    # no_driver_found at once, and capped pickups drive fewer empty km.
    assert batched["no_driver_pct"] < greedy["no_driver_pct"]
    assert batched["empty_km"] < by["batched_2s"]["empty_km"]
    for r in runs:
        assert 0 <= r["served_pct"] <= 100 and r["requests"] > 0
