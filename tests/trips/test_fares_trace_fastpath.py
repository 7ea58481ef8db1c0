"""The compiled trace measure must give exactly what the checked, point-by-point one gives: the
same sums in the same order, so a fare never depends on which path measured it."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from trips.fares import NYC_YELLOW_2016, _measure_trace_checked, _measure_trace_vectorised

step = st.tuples(st.sampled_from([0.0, 1.0, 4.0, 10.0, 60.0]),
                 st.floats(-0.01, 0.01), st.floats(-0.01, 0.01))


@settings(max_examples=200, deadline=None)
@given(st.lists(step, min_size=1, max_size=60))
def test_fast_and_checked_measures_agree(steps: list[tuple[float, float, float]]) -> None:
    t, lat, lng, trace = 0.0, 40.7, -73.95, []
    for dt, dlat, dlng in steps:
        t, lat, lng = t + dt, lat + dlat, lng + dlng
        trace.append((t, lat, lng))
    fast = _measure_trace_vectorised(NYC_YELLOW_2016, trace)
    assert fast is not None
    slow = _measure_trace_checked(NYC_YELLOW_2016, trace)
    assert dataclasses.astuple(fast) == dataclasses.astuple(slow)


def test_doubtful_traces_go_to_the_checked_path() -> None:
    assert _measure_trace_vectorised(NYC_YELLOW_2016, [(0, 91.0, 0.0)]) is None
    assert _measure_trace_vectorised(NYC_YELLOW_2016, [(5, 1.0, 1.0), (4, 1.0, 1.0)]) is None
    assert _measure_trace_vectorised(NYC_YELLOW_2016, [(0, "x", 1.0)]) is None  # type: ignore[list-item]
    assert _measure_trace_vectorised(NYC_YELLOW_2016, [(0, 1.0, 1.0), (1, 1.0, 181.0)]) is None
    assert _measure_trace_vectorised(NYC_YELLOW_2016, [(0, 1.0, 1.0), (float("nan"), 1, 1)]) \
        is None
