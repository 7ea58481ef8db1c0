"""The meter's trace measure (one compiled pass, `trips.fares.measure_trace`) against the rule
written point by point in this test, and its refusals naming the bad point."""

from __future__ import annotations

import dataclasses
import math
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ridehail.kernel.geo import haversine_m
from trips.fares import NYC_YELLOW_2016, Tariff, measure_trace

step = st.tuples(st.sampled_from([0.0, 1.0, 4.0, 10.0, 60.0]),
                 st.floats(-0.01, 0.01), st.floats(-0.01, 0.01))


def by_the_rule(tariff: Tariff, trace: list[tuple[float, float, float]]) -> tuple:
    """Segment by segment: a jump (faster than max_speed_mps) charges its time and no distance;
    in `either` mode a segment above the threshold charges its distance, any other its time."""
    total_d = total_t = charged_d = charged_t = 0.0
    jumps = 0
    for (t0, la0, ln0), (t1, la1, ln1) in zip(trace, trace[1:], strict=False):
        dt = t1 - t0
        d = haversine_m(la0, ln0, la1, ln1)
        speed = d / dt if dt > 0 else (math.inf if d > 0 else 0.0)
        if speed > float(tariff.max_speed_mps):
            jumps += 1
            d = 0.0
        total_d += d
        total_t += dt
        if tariff.meter_mode == "both":
            charged_d, charged_t = charged_d + d, charged_t + dt
        elif d > 0 and speed > float(tariff.threshold_speed_mps):
            charged_d += d
        else:
            charged_t += dt
    return total_d, total_t, charged_d, charged_t, jumps


@settings(max_examples=200, deadline=None)
@given(st.lists(step, min_size=1, max_size=60), st.booleans())
def test_the_measure_is_the_rule_to_the_last_bit(steps: list[tuple[float, float, float]],
                                                 both: bool) -> None:
    tariff = dataclasses.replace(NYC_YELLOW_2016, meter_mode="both") if both else NYC_YELLOW_2016
    t, lat, lng, trace = 0.0, 40.7, -73.95, []
    for dt, dlat, dlng in steps:
        t, lat, lng = t + dt, lat + dlat, lng + dlng
        trace.append((t, lat, lng))
    # The same sums in the same order: equal, not close, so a fare never depends on the path.
    assert dataclasses.astuple(measure_trace(tariff, trace)) == by_the_rule(tariff, trace)
    # Other number types measure as their floats.
    odd = [(Decimal(str(a)), b, c) for a, b, c in trace]
    assert measure_trace(tariff, odd) == measure_trace(tariff, trace)  # type: ignore[arg-type]


@pytest.mark.parametrize(("trace", "names"), [
    ([(0, 91.0, 0.0)], "trace[0].lat"),
    ([(5, 1.0, 1.0), (4, 1.0, 1.0)], "trace[1].ts: goes backwards"),
    ([(0, "x", 1.0)], "trace[0].lat"),
    ([(0, 1.0, 1.0), (1, 1.0, 181.0)], "trace[1].lng"),
    ([(0, 1.0, 1.0), (float("nan"), 1, 1)], "trace[1].ts"),
    ([(0, 1.0)], "trace[0]: expected (ts, lat, lng)"),
])
def test_a_doubtful_trace_is_refused_naming_its_point(trace: list, names: str) -> None:
    with pytest.raises(ValueError, match=re.escape(names)):
        measure_trace(NYC_YELLOW_2016, trace)
