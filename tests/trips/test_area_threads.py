"""The service area is queried from many request threads at once. GEOS's prepared geometries
are not safe for that (they build their indexes lazily, and shapely releases the GIL while GEOS
runs): unguarded, concurrent first queries of a freshly prepared area corrupt the heap and the
process aborts (`malloc(): unaligned tcache chunk detected`), as an API process did under
bench/cluster.py. Without the lock in trips/area.py this test kills the test run."""

from __future__ import annotations

import threading
from pathlib import Path

import shapely

import ridehail
from simulator.city import City
from trips.area import ServiceArea, read_geojson_area

ROUNDS, THREADS, QUERIES = 150, 8, 20


def test_fresh_areas_queried_by_many_threads_at_once_answer_and_do_not_crash() -> None:
    path = Path(ridehail.__file__).parent / "data" / "nyc_boroughs.geojson"
    _doc, geometry = read_geojson_area(path, "the shipped service area")
    wkb = shapely.to_wkb(geometry)
    answers: list[bool] = []
    for _ in range(ROUNDS):
        fresh = shapely.from_wkb(wkb)  # a new, not yet queried, prepared geometry each round
        area, city = ServiceArea(fresh), City("nyc", fresh)  # sharing it, as the simulator does
        start = threading.Barrier(THREADS)

        def ask(k: int, area: ServiceArea = area, city: City = city,
                start: threading.Barrier = start) -> None:
            start.wait()
            for i in range(QUERIES):
                lat, lng = 40.75 + 0.001 * i, -73.98 + 0.001 * k
                answers.append(area.contains(lat, lng) and city.contains(lat, lng))

        threads = [threading.Thread(target=ask, args=(k,)) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # Midtown Manhattan is in NYC: every answer, from every thread, says so.
    assert len(answers) == ROUNDS * THREADS * QUERIES and all(answers)
