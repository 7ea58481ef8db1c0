"""Compile (or load from numba's on-disk cache) every kernel of the index before the first real
request; `ridehail.warmup` runs this with the project's other kernels (after `make` installs,
in the Docker image's build, and when a server starts), so no query pays for compilation.
"""

from __future__ import annotations

import threading
import time

from .index import GeoIndex

_done = threading.Event()
_lock = threading.Lock()


def warm_up() -> float:
    """Exercise every entry point of both backends once per process; returns the seconds spent
    (0.0 when already warm)."""
    with _lock:
        if _done.is_set():
            return 0.0
        t0 = time.perf_counter()
        for backend in ("quadtree", "h3"):
            idx = GeoIndex(backend=backend, ttl_s=3600.0)
            idx.upsert("a", 40.70, -73.90)
            idx.upsert_many(["b", "c", "d", "e"], [40.71, 40.72, 40.73, 40.74],
                            [-73.90, -73.91, -73.92, -73.93])
            idx.publish()  # everyone moved: a new base
            idx.set_available("a", False)
            snap = idx.publish()  # one moved: a delta
            snap.nearest(40.70, -73.90, k=2, radius_m=1000.0)
            snap.nearest_many([40.70], [-73.90], k=2, radius_m=1000.0)
            snap.explain_nearest(40.70, -73.90, k=2, radius_m=1000.0)
            snap.within(40.70, -73.90, 1000.0)
            list(snap.cells())
            list(snap.drivers())
            idx.remove("b")
            idx.publish()
        _done.set()
        return time.perf_counter() - t0

