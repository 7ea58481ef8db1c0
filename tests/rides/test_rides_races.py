"""Races on the ride flow, through the API, in one app and across two app instances on one
database: one offer accepted by 50 threads, stale offers, two riders racing for one driver.
The invariants are then read from the database itself (`check_invariants`)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from flask import Flask

from tests.rides.conftest import (
    DROPOFF,
    PICKUP,
    Account,
    Api,
    check_invariants,
    go_online,
    long_poll,
    publish,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls on as many threads, released at once by a barrier."""
    barrier = threading.Barrier(len(calls))

    def go(fn: Callable[[], Any]) -> Any:
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


def two_instances(make_app: Callable[..., Flask]) -> tuple[Flask, Flask]:
    """Two app instances (each with its own index, timers and channel) on one database: what
    two API processes are. The second instance skips no migration (they are idempotent)."""
    return make_app(), make_app()


@pytest.mark.parametrize("instances", [1, 2])
def test_fifty_concurrent_accepts_of_one_offer_one_wins(
    make_app: Callable[..., Flask], instances: int
) -> None:
    apps = [make_app() for _ in range(instances)]
    apis = [Api(a.test_client()) for a in apps]
    rider = sign_up_rider(apis[0])
    driver = sign_up_driver(apis[0])
    for a, api in zip(apps, apis, strict=True):
        go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
        publish(a)
    trip = request_trip(apis[0], rider)
    [offer] = long_poll(apis[0], driver, wait=0)

    results = run_together([
        partial(apis[i % instances].post, f"/v1/offers/{offer['id']}/accept", driver.token)
        for i in range(50)
    ])
    codes = Counter(r.status for r in results)
    assert codes == {200: 1, 409: 49}, codes
    assert all(r.headers["Content-Type"] == "application/problem+json"
               for r in results if r.status == 409)
    winner = next(r for r in results if r.status == 200)
    assert winner.body["state"] == "driver_assigned" and winner.body["driver_id"] == driver.id
    seen = apis[-1].get(f"/v1/trips/{trip['id']}", rider.token).body
    assert seen["state"] == "driver_assigned" and seen["driver_id"] == driver.id
    for a in apps:
        check_invariants(a)


def test_a_stale_offer_and_a_live_one_accepted_together(app: Flask, api: Api) -> None:
    """A driver rejected trip A, then was offered trip B: accepting both at once gets B only."""
    rider_a, rider_b = sign_up_rider(api), sign_up_rider(api)
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    trip_a = request_trip(api, rider_a)
    [offer_a] = long_poll(api, driver, wait=0)
    assert api.post(f"/v1/offers/{offer_a['id']}/reject", driver.token).status == 200
    assert api.get(f"/v1/trips/{trip_a['id']}", rider_a.token).body["state"] \
        == "no_driver_found"
    publish(app)
    trip_b = request_trip(api, rider_b)
    [offer_b] = long_poll(api, driver, wait=0)
    assert offer_b["trip_id"] == trip_b["id"]

    a, b = run_together([
        lambda: api.post(f"/v1/offers/{offer_a['id']}/accept", driver.token),
        lambda: api.post(f"/v1/offers/{offer_b['id']}/accept", driver.token),
    ])
    assert (a.status, b.status) == (409, 200)
    # And a second accept of the won offer changes nothing.
    again = api.post(f"/v1/offers/{offer_b['id']}/accept", driver.token)
    assert again.status == 409
    assert api.get(f"/v1/trips/{trip_b['id']}", rider_b.token).body["driver_id"] == driver.id
    check_invariants(app)


def test_a_driver_with_a_live_trip_gets_no_second_offer(app: Flask, api: Api) -> None:
    riders = [sign_up_rider(api) for _ in range(2)]
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    first = request_trip(api, riders[0])
    [offer] = long_poll(api, driver, wait=0)
    assert api.post(f"/v1/offers/{offer['id']}/accept", driver.token).status == 200
    # The driver keeps sending locations while en route: they must not become available.
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    publish(app)
    second = request_trip(api, riders[1])
    assert second["state"] == "no_driver_found"
    assert long_poll(api, driver, wait=0) == []
    assert api.get(f"/v1/trips/{first['id']}", riders[0].token).body["state"] \
        == "driver_assigned"
    check_invariants(app)


def _race_riders_for_one_driver(apps: list[Flask], n_riders: int) -> None:
    apis = [Api(a.test_client()) for a in apps]
    riders = [sign_up_rider(apis[0]) for _ in range(n_riders)]
    driver = sign_up_driver(apis[0])
    for a, api in zip(apps, apis, strict=True):
        go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
        publish(a)

    trips = run_together([
        partial(apis[i % len(apis)].post, "/v1/trips", r.token,
                {"pickup": PICKUP, "dropoff": DROPOFF})
        for i, r in enumerate(riders)
    ])
    assert all(t.status == 201 for t in trips), [t.text for t in trips]
    by_id = {t.body["id"]: (riders[i], apis[i % len(apis)]) for i, t in enumerate(trips)}

    # The driver sees exactly one pending offer, whichever instance it asks.
    offers = [long_poll(api, driver, wait=0) for api in apis]
    assert all(len(o) == 1 for o in offers), offers
    assert len({o[0]["id"] for o in offers}) == 1
    offered_trip = offers[0][0]["trip_id"]
    # Everyone else ended without a driver (there is only one) - none is left dangling.
    for trip_id, (rider, api) in by_id.items():
        state = api.get(f"/v1/trips/{trip_id}", rider.token).body["state"]
        assert state == ("requested" if trip_id == offered_trip else "no_driver_found")

    # Accepting from every instance at once: one wins.
    results = run_together([
        partial(api.post, f"/v1/offers/{offers[0][0]['id']}/accept", driver.token)
        for api in apis for _ in range(5)
    ])
    assert sorted(r.status for r in results).count(200) == 1
    for a in apps:
        check_invariants(a)


def test_riders_race_for_one_driver(app: Flask) -> None:
    _race_riders_for_one_driver([app], n_riders=8)


def test_riders_race_for_one_driver_across_two_instances(make_app: Callable[..., Flask]) -> None:
    _race_riders_for_one_driver(list(two_instances(make_app)), n_riders=8)


def test_many_drivers_and_riders_race_across_two_instances(
    make_app: Callable[..., Flask]
) -> None:
    """Six riders, three drivers, two instances, every driver accepting whatever it is offered
    as fast as it can: trips do get assigned, no driver ends with two live trips, no trip with
    two drivers, and every accepted offer is the accepting driver's own."""
    apps = list(two_instances(make_app))
    apis = [Api(a.test_client()) for a in apps]
    riders = [sign_up_rider(apis[0]) for _ in range(6)]
    drivers = [sign_up_driver(apis[0]) for _ in range(3)]
    for i, d in enumerate(drivers):
        for a, api in zip(apps, apis, strict=True):
            go_online(api, d, PICKUP["lat"] + 0.0003 * i, PICKUP["lng"])
            publish(a)
    requests_left = [len(riders)]
    riders_done = threading.Event()
    lock = threading.Lock()

    def rider_requests(i: int) -> Any:
        try:
            return request_trip(apis[i % 2], riders[i])
        finally:
            with lock:
                requests_left[0] -= 1
                if requests_left[0] == 0:
                    riders_done.set()

    def driver_accepts(d: Account, api: Api) -> list[tuple[str, dict[str, Any]]]:
        """Accept offers until one is won, or until a poll begun after every request was
        answered finds nothing (every offer ever made to this driver is then seen)."""
        won: list[tuple[str, dict[str, Any]]] = []
        while not won:
            final = riders_done.is_set()
            offers = long_poll(api, d, wait=0 if final else 1)
            for o in offers:
                r = api.post(f"/v1/offers/{o['id']}/accept", d.token)
                assert r.status in (200, 409), r.text
                if r.status == 200:
                    won.append((o["id"], r.body))
            if final and not offers:
                break
        return won

    results = run_together([
        *(partial(rider_requests, i) for i in range(6)),
        *(partial(driver_accepts, d, apis[j % 2]) for j, d in enumerate(drivers))])
    won_by = dict(zip((d.id for d in drivers), results[6:], strict=True))
    trips = {}
    for r in riders:
        [tid] = _trip_ids(apps[0], r)
        trips[tid] = apis[0].get(f"/v1/trips/{tid}", r.token).body
        assert trips[tid]["state"] in {"requested", "driver_assigned", "no_driver_found"}
    assigned = {tid: t["driver_id"] for tid, t in trips.items() if t["driver_id"] is not None}
    assert assigned, f"no trip was assigned: {[t['state'] for t in trips.values()]}"
    assert all(trips[tid]["state"] == "driver_assigned" for tid in assigned)
    # No driver with two live trips, no driver winning two offers.
    assert len(set(assigned.values())) == len(assigned), assigned
    assert all(len(won) <= 1 for won in won_by.values()), won_by
    # Every trip assigned is one a driver won, and each won offer is that driver's own.
    assert sorted(assigned.items()) == sorted(
        (trip["id"], d) for d, won in won_by.items() for _, trip in won)
    with apps[1].extensions["uow_factory"](readonly=True) as uow:
        for d, won in won_by.items():
            for offer_id, trip in won:
                offer = uow.offers.get(offer_id)
                assert (offer.driver_id, offer.trip_id, offer.state.value) == (
                    d, trip["id"], "accepted")
                assert trip["driver_id"] == d and trip["state"] == "driver_assigned"
                assert uow.drivers.get(d).trip_id == trip["id"]
    for a in apps:
        check_invariants(a)


def _trip_ids(app: Flask, rider: Account) -> list[str]:
    with app.extensions["uow_factory"](readonly=True) as uow:
        return [t.id for t in uow.trips.for_rider(rider.id)]


def test_rider_cancel_racing_the_driver_accept_never_fails(app: Flask, api: Api) -> None:
    """Whoever wins, the other gets a 4xx (never a 5xx) and the end state is consistent: the
    trip is cancelled (the rider always may cancel before pickup) and the driver is free."""
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    outcomes: Counter[tuple[int, int]] = Counter()
    for _ in range(12):
        rider = sign_up_rider(api)
        publish(app)
        trip = request_trip(api, rider)
        [offer] = long_poll(api, driver, wait=0)
        cancel, accept = run_together([
            partial(api.post, f"/v1/trips/{trip['id']}/cancel", rider.token),
            partial(api.post, f"/v1/offers/{offer['id']}/accept", driver.token),
        ])
        outcomes[(cancel.status, accept.status)] += 1
        assert cancel.status < 500 and accept.status < 500, (cancel.text, accept.text)
        if cancel.status == 409:  # lost to the accept: cancelling again now succeeds
            assert api.post(f"/v1/trips/{trip['id']}/cancel", rider.token).status == 200
        seen = api.get(f"/v1/trips/{trip['id']}", rider.token).body
        assert seen["state"] == "cancelled", (outcomes, seen)
        assert long_poll(api, driver, wait=0) == []
        check_invariants(app)
        with app.extensions["uow_factory"](readonly=True) as uow:
            st = uow.drivers.get(driver.id)
        assert st.status == "available" and st.trip_id is None, (outcomes, st)


def test_concurrent_status_changes_are_never_a_server_error(app: Flask, api: Api) -> None:
    """A double-tapped "go online" (or online/offline racing an offer's expiry) loses a
    compare-and-set: the loser gets a 409 to retry, and the driver ends in one clear state."""
    driver = sign_up_driver(api)
    results = run_together([
        lambda: api.put("/v1/drivers/me/status", driver.token, {"status": "online"})
        for _ in range(8)
    ])
    assert {r.status for r in results} <= {200, 409}, [r.text for r in results]
    assert any(r.status == 200 for r in results)
    results = run_together([
        partial(api.put, "/v1/drivers/me/status", driver.token, {"status": s})
        for s in ["online", "offline"] * 4
    ])
    assert {r.status for r in results} <= {200, 409}, [r.text for r in results]
    # The invariants hold on the state the race left, before anything resets the driver: one
    # clear state, with no trip.
    check_invariants(app)
    with app.extensions["uow_factory"](readonly=True) as uow:
        st = uow.drivers.get(driver.id)
    assert st.status in {"available", "offline"} and st.trip_id is None, st
    final = api.put("/v1/drivers/me/status", driver.token, {"status": "online"})
    assert final.status == 200 and final.body["online"] is True
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    check_invariants(app)
