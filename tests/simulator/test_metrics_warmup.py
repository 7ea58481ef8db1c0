"""simulator.metrics: the headline utilisation leaves the warm-up out; the whole-run one stays."""

from __future__ import annotations

import pytest

from simulator.metrics import Metrics, TripFacts


def _trip(i: int, length_s: float) -> TripFacts:
    return TripFacts(trip_id=str(i), requested_at=10.0 * i, state="completed",
                     arrived_at=10.0 * i + 30, ended_at=10.0 * i + length_s, fare_cents=1000)


def _run(trip_length_s: float, duration_s: float = 1800.0) -> dict[str, float | int | None]:
    m = Metrics(duration_s)  # 300 s intervals
    for t in range(10, int(duration_s) + 1, 10):
        # 100 drivers online; 10 busy in the first 10 minutes, then 50.
        m.tick(float(t), 10.0, online=100, busy=10 if t <= 600 else 50)
    kpis, _, _ = m.kpis([_trip(i, trip_length_s) for i in range(5)], 0.0, 0.0)
    return kpis


def test_warm_up_is_about_one_trip_and_left_out_of_the_headline_utilisation() -> None:
    kpis = _run(trip_length_s=500.0)  # one trip: 500 s, so two 300 s intervals
    assert kpis["warmup_s"] == 600.0
    assert kpis["driver_utilisation_after_warmup_pct"] == pytest.approx(50.0)
    assert kpis["driver_utilisation_pct"] == pytest.approx((10 * 600 + 50 * 1200) / 1800, abs=1e-3)


def test_warm_up_is_at_most_half_the_run() -> None:
    kpis = _run(trip_length_s=5000.0)
    assert kpis["warmup_s"] == 900.0  # 3 of 6 intervals


def test_a_run_of_one_interval_has_no_warm_up_figure() -> None:
    kpis = _run(trip_length_s=100.0, duration_s=300.0)
    assert kpis["warmup_s"] is None and kpis["driver_utilisation_after_warmup_pct"] is None
    assert kpis["driver_utilisation_pct"] is not None
