"""Compile (or load from numba's on-disk cache) every numba kernel of the project before the
first real request: the geo index's (`geoindex.warmup`), the learned travel-time model's
(`dispatch.learned_eta`) and the meter's (`trips.fares`, `trips.pricing`).

`make` runs this once after installing and the Docker image at build time (`python -m
ridehail.warmup`); servers call `warm_up()` at start. Cold, the kernels take about 25 s to
compile on the 2-core development machine; from the cache, well under a second.

numba's on-disk cache knows a kernel's own file only: a kernel that calls one from another
module (`quadtree.qt_search` calls `kernels.scan`) keeps its cached code when only the callee's
file changed. `drop_stale_kernels` therefore fingerprints every file that holds a kernel and
drops the project's whole cache when the fingerprint moved (a checkout after `git pull`); the
warm-up and the test suite call it first.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path

import numpy as np

from dispatch.learned_eta import SHIPPED, load
from geoindex.warmup import warm_up as warm_up_index
from trips.fares import NYC_YELLOW_2016, measure_trace
from trips.model import Trip
from trips.pricing import metered_trace

ROOT = Path(__file__).resolve().parent.parent
KERNEL_PACKAGES = ("geoindex", "dispatch", "trips")  # the packages whose modules hold kernels


def drop_stale_kernels(root: Path = ROOT) -> int:
    """Delete the packages' cached kernels (numba's *.nbi and *.nbc) when the files holding
    kernels changed since the cache was written; returns how many files went. The fingerprint
    is kept beside the cache; where it cannot be written (a read-only image) nothing is lost
    but the check."""
    sources = sorted(p for pkg in KERNEL_PACKAGES for p in (root / pkg).glob("*.py")
                     if "@njit" in p.read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    marker = root / KERNEL_PACKAGES[0] / "__pycache__" / "kernels.fingerprint"
    fingerprint = digest.hexdigest()
    with contextlib.suppress(OSError):
        if marker.read_text(encoding="ascii") == fingerprint:
            return 0
    dropped = 0
    for pkg in KERNEL_PACKAGES:
        for cached in [*(root / pkg / "__pycache__").glob("*.nbi"),
                       *(root / pkg / "__pycache__").glob("*.nbc")]:
            with contextlib.suppress(OSError):
                cached.unlink()
                dropped += 1
    with contextlib.suppress(OSError):
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(fingerprint, encoding="ascii")
    return dropped


def warm_up() -> float:
    """Exercise each kernel's entry points once per process; returns the seconds spent."""
    t0 = time.perf_counter()
    drop_stale_kernels()
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
