"""One city, three API processes and a Celery worker: each step of a ride goes to a different
process, and the driver's long-poll on one process is woken by an offer made on another."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from .conftest import (
    DROPOFF,
    PICKUP,
    auth,
    nearby_has,
    sign_up_driver,
    sign_up_rider,
    wait_until,
)

pytestmark = pytest.mark.slow


def _haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    la1, lo1, la2, lo2 = map(math.radians, (*a, *b))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(
        (lo2 - lo1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def test_a_ride_across_three_processes(make_cluster: Any) -> None:
    cluster = make_cluster()
    a, b, c = (p.url for p in cluster.start_apis(3))
    cluster.start_worker()

    driver_id, dtok = sign_up_driver(a)
    _rider_id, rtok = sign_up_rider(b)
    requests.post(f"{c}/v1/riders/me/payment-methods", json={"token": "tok_ok"},
                  headers=auth(rtok), timeout=10)
    r = requests.put(f"{b}/v1/drivers/me/status", json={"status": "online"}, headers=auth(dtok),
                     timeout=10)
    assert r.status_code == 200, r.text

    # A location posted to C becomes visible to nearby queries on A and B (the stream).
    near = (PICKUP[0] + 0.002, PICKUP[1])
    r = requests.post(f"{c}/v1/drivers/me/location", json={"lat": near[0], "lng": near[1]},
                      headers=auth(dtok), timeout=10)
    assert r.status_code == 204, r.text
    for url in (a, b):
        wait_until(lambda u=url: nearby_has(driver_id, u, rtok, *PICKUP), 10,
                   f"driver visible on {url}")

    # The driver long-polls on B; the rider requests on A. The offer (20 s deadline) outlives
    # nothing if the wake-up is lost: an un-woken poll returns after 25 s with no live offer.
    got: dict[str, Any] = {}
    dropoff = (PICKUP[0] + 0.00045, PICKUP[1])  # 50 m north

    def poll() -> None:
        got["r"] = requests.get(f"{b}/v1/drivers/me/offers", params={"wait": 25},
                                headers=auth(dtok), timeout=60)

    poller = threading.Thread(target=poll)
    poller.start()
    # Give the poll time to park, so the wake-up path is what delivers the offer (the test
    # stays correct either way: a poll arriving late reads the offer straight away).
    time.sleep(0.5)
    r = requests.post(f"{a}/v1/trips", json={
        "pickup": {"lat": PICKUP[0], "lng": PICKUP[1]},
        "dropoff": {"lat": dropoff[0], "lng": dropoff[1]}}, headers=auth(rtok), timeout=10)
    assert r.status_code == 201, r.text
    trip_id = r.json()["id"]
    poller.join(60)
    offers = got["r"].json()
    assert got["r"].status_code == 200 and [o["trip_id"] for o in offers] == [trip_id], offers
    offer_id = offers[0]["id"]

    # Accept on C (an offer A made), steps on A, trace points on B, complete on C.
    r = requests.post(f"{c}/v1/offers/{offer_id}/accept", headers=auth(dtok), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "driver_assigned" and r.json()["driver_id"] == driver_id
    for step in ("arrive", "start"):
        r = requests.post(f"{a}/v1/trips/{trip_id}/{step}", headers=auth(dtok), timeout=10)
        assert r.status_code == 200, r.text
    started = datetime.fromisoformat(r.json()["started_at"]).timestamp()
    # A detour east, north, west (50 m legs, two seconds apart: 25 m/s, under the meter's
    # city speed cap). The priced distance must follow it, not the straight pickup -> dropoff
    # line: only the whole trace, posted to B and kept in Redis, can give that to C.
    path = [PICKUP, (PICKUP[0], PICKUP[1] + 0.0006), (dropoff[0], PICKUP[1] + 0.0006), dropoff]
    for i, (lat, lng) in enumerate(path[1:], start=1):
        ts = datetime.fromtimestamp(started + 2 * i, UTC).isoformat()
        r = requests.post(f"{b}/v1/drivers/me/location",
                          json={"lat": lat, "lng": lng, "ts": ts}, headers=auth(dtok),
                          timeout=10)
        assert r.status_code == 204, r.text
    # Complete only once the last point is in the past (the trace ends at the completion).
    wait_until(lambda: time.time() > started + 2 * len(path), 15, "the trace's last point")
    r = requests.post(f"{c}/v1/trips/{trip_id}/complete", headers=auth(dtok), timeout=10)
    assert r.status_code == 200, r.text
    done = r.json()
    detour = sum(_haversine_m(p, q) for p, q in zip(path, path[1:], strict=False))
    straight = _haversine_m(PICKUP, dropoff)
    assert done["state"] == "completed"
    assert done["distance_m"] >= 0.95 * detour > 2.5 * straight, (done["distance_m"], detour)

    # The driver is available again everywhere: visible to nearby on A and B.
    for url in (a, b):
        wait_until(lambda u=url: nearby_has(driver_id, u, rtok, *DROPOFF), 10,
                   f"driver available again on {url}")
    # The Celery worker (its own queue) charged the trip.
    wait_until(lambda: requests.get(f"{b}/v1/trips/{trip_id}", headers=auth(rtok),
                                    timeout=10).json()["payment_state"] == "captured",
               30, "payment captured by the worker")
