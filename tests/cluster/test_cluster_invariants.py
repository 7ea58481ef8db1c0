"""DESIGN.md's invariants across processes: 20 riders and 5 drivers on three API processes,
each offer accepted by its driver on all three processes at once. No offer is accepted twice,
no driver ever holds two live trips, no request gets a 500."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.nearby_ids import opaque_ids

from .conftest import PICKUP, auth, nearby_ids, sign_up_driver, sign_up_rider, wait_until

pytestmark = pytest.mark.slow

LIVE = ("driver_assigned", "driver_arrived", "in_progress")


def test_concurrent_riders_and_drivers_across_processes(make_cluster: Any,
                                                         pg_schema_url: str) -> None:
    cluster = make_cluster()
    urls = [p.url for p in cluster.start_apis(3)]
    drivers = [sign_up_driver(urls[i % 3]) for i in range(5)]
    riders = [sign_up_rider(urls[i % 3]) for i in range(20)]
    for i, (_id, tok) in enumerate(drivers):
        url = urls[i % 3]
        assert requests.put(f"{url}/v1/drivers/me/status", json={"status": "online"},
                            headers=auth(tok), timeout=10).status_code == 200
        assert requests.post(f"{urls[(i + 1) % 3]}/v1/drivers/me/location",
                             json={"lat": PICKUP[0] + 0.001 * i, "lng": PICKUP[1]},
                             headers=auth(tok), timeout=10).status_code == 204
    driver_ids = {d for d, _ in drivers}
    for url in urls:
        # Nearby's ids are opaque per rider (issue 13, item 10): ours are mapped to them. A
        # liveness bound, not a latency target (bench/cluster.py measures the lag): three
        # processes starting on a loaded CI machine once took more than 10 s.
        wait_until(lambda u=url: all(
            opaque_ids(riders[0][0], d) & nearby_ids(u, riders[0][1], *PICKUP)
            for d in driver_ids), 30, f"all drivers visible on {url}")

    statuses: Counter[int] = Counter()
    accepted_by_offer: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    violations: list[Any] = []

    def note(r: requests.Response) -> requests.Response:
        with lock:
            statuses[r.status_code] += 1
        return r

    db = create_engine(pg_schema_url)

    samples: list[int] = []

    def watch() -> None:  # samples the database while the load runs
        while not stop.is_set():
            samples.append(1)
            with db.connect() as conn:
                rows = conn.execute(text(
                    "SELECT driver_id, count(*) FROM trips WHERE state = ANY(:live) "
                    "GROUP BY driver_id HAVING count(*) > 1"), {"live": list(LIVE)}).all()
            if rows:
                violations.extend(rows)
            stop.wait(0.1)

    def request_trip(i: int) -> None:
        url, (_rid, tok) = urls[i % 3], riders[i]
        dropoff = {"lat": PICKUP[0] + 0.004, "lng": PICKUP[1] + 0.002}
        note(requests.post(f"{url}/v1/trips", json={
            "pickup": {"lat": PICKUP[0], "lng": PICKUP[1]}, "dropoff": dropoff},
            headers=auth(tok), timeout=30))

    def drive(tok: str, deadline: float) -> None:
        rnd = random.Random(tok)
        with ThreadPoolExecutor(3) as pool:
            while time.monotonic() < deadline:
                offers = note(requests.get(f"{rnd.choice(urls)}/v1/drivers/me/offers",
                                           params={"wait": 1}, headers=auth(tok),
                                           timeout=30)).json()
                for offer in offers:
                    # The same accept on all three processes at once: only one may win.
                    results = list(pool.map(lambda u, o=offer: note(requests.post(
                        f"{u}/v1/offers/{o['id']}/accept", headers=auth(tok), timeout=30)),
                        urls))
                    won = [r for r in results if r.status_code == 200]
                    with lock:
                        accepted_by_offer[offer["id"]] += len(won)
                    if won:
                        trip_id = offer["trip_id"]
                        for step in ("arrive", "start", "complete"):
                            note(requests.post(f"{rnd.choice(urls)}/v1/trips/{trip_id}/{step}",
                                               headers=auth(tok), timeout=30))

    watcher = threading.Thread(target=watch)
    watcher.start()
    deadline = time.monotonic() + 15
    try:
        with ThreadPoolExecutor(25) as pool:
            futures = [pool.submit(drive, tok, deadline) for _d, tok in drivers]
            futures += [pool.submit(request_trip, i) for i in range(20)]
            for f in futures:
                f.result()
    finally:
        stop.set()
        watcher.join()

    assert statuses[500] == 0, statuses
    assert not violations, f"drivers with two live trips: {violations}"
    assert len(samples) > 10, "the watcher stopped early (see its exception)"
    assert accepted_by_offer and max(accepted_by_offer.values()) == 1, accepted_by_offer
    with db.connect() as conn:
        twice = conn.execute(text(
            "SELECT trip_id FROM offers WHERE state = 'accepted' GROUP BY trip_id "
            "HAVING count(*) > 1")).all()
        mismatched = conn.execute(text(
            "SELECT t.id FROM trips t JOIN offers o ON o.trip_id = t.id "
            "AND o.state = 'accepted' WHERE t.driver_id IS DISTINCT FROM o.driver_id "
            "AND t.state <> 'requested'")).all()
        completed = conn.execute(text(
            "SELECT count(*) FROM trips WHERE state = 'completed'")).scalar_one()
    db.dispose()
    assert not twice and not mismatched
    assert completed >= 5, "the load should have completed a trip per driver at least"
