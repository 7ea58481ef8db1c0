"""Compile (or load from numba's on-disk cache) every numba kernel of the project before the
first real request: the geo index's (`geoindex.warmup`), the learned travel-time model's
(`dispatch.learned_eta`) and the meter's (`trips.fares`, `trips.pricing`).

`make` runs this once after installing and the Docker image at build time (`python -m
ridehail.warmup`); servers call `warm_up()` at start. Cold, the kernels take about 25 s to
compile on the 2-core development machine; from the cache, well under a second.
"""

from __future__ import annotations

import time

import numpy as np

from dispatch.learned_eta import SHIPPED, load
from geoindex.warmup import warm_up as warm_up_index
from trips.fares import NYC_YELLOW_2016, measure_trace
from trips.model import Trip
from trips.pricing import metered_trace


def warm_up() -> float:
    """Exercise each kernel's entry points once per process; returns the seconds spent."""
    t0 = time.perf_counter()
    warm_up_index()
    for path in SHIPPED.values():
        model = load(path)
        model.travel(40.75, -73.99, 40.76, -73.98, 0.0)
        model.pickup_etas([40.75, 40.74], [-73.99, -73.98], 40.76, -73.98, 0.0)
    measure_trace(NYC_YELLOW_2016, np.array([[0.0, 40.75, -73.99], [10.0, 40.751, -73.99]]))
    metered_trace(Trip(id="warm-up", rider_id="r", vehicle_class="standard", pickup_lat=40.75,
                       pickup_lng=-73.99, dropoff_lat=40.76, dropoff_lng=-73.98,
                       requested_at=0.0, started_at=1.0), [(5.0, 40.755, -73.985)], 10.0)
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"numba kernels ready in {warm_up():.1f} s")
