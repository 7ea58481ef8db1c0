"""The directory's memory mirror of drivers' states keeps the latest commit, whatever order the
changes reach it in (`DriverDirectory._mirror`, ordered by the driver row's version).

Use cases mirror a change after their commit, so two that race may get there in the other
order: a rider's cancel frees the driver an accept just assigned, and the accept's mirror
arrives last. Without the order check the mirror kept the driver en route while the database
had them available, and dispatch never offered them a trip until the next reconcile (the cause
of a flaky `test_rider_cancel_racing_the_driver_accept_never_fails`). These tests make that
order happen on purpose, through the API on SQLite and PostgreSQL, and through the events
another process would send."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from dispatch.model import DriverStatus
from tests.rides.conftest import (
    PICKUP,
    Api,
    check_invariants,
    go_online,
    long_poll,
    publish,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)


def defer_mirror(app: Flask, status: DriverStatus) -> Callable[[], None]:
    """Hold back the first mirrored change to `status`, as if its thread were descheduled
    between its commit and its mirror; returns what plays it (and mirrors as before)."""
    directory = app.extensions["dispatch"].drivers
    real = directory.set_status
    held: list[tuple[Any, ...]] = []

    def late(driver_id: str, st: DriverStatus, trip_id: str | None, version: int) -> None:
        if st == status and not held:
            held.append((driver_id, st, trip_id, version))
            return
        real(driver_id, st, trip_id, version)

    def play() -> None:
        directory.set_status = real
        [call] = held
        real(*call)

    directory.set_status = late
    return play


def test_an_accept_mirrored_after_the_cancel_that_followed_it_leaves_the_driver_free(
        app: Flask, api: Api) -> None:
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    rider = sign_up_rider(api)
    publish(app)
    trip = request_trip(api, rider)
    [offer] = long_poll(api, driver, wait=0)
    play_accept = defer_mirror(app, DriverStatus.en_route)
    assert api.post(f"/v1/offers/{offer['id']}/accept", driver.token).status == 200
    assert api.post(f"/v1/trips/{trip['id']}/cancel", rider.token).status == 200
    directory = app.extensions["dispatch"].drivers
    play_accept()  # the accept's mirror, last
    entry = directory.entries[driver.id]
    assert (entry.status, entry.trip_id) == (DriverStatus.available, None), entry
    # Dispatch sees the driver: the next rider's request is offered to them.
    check_invariants(app)
    publish(app)
    other = sign_up_rider(api)
    request_trip(api, other)
    assert len(long_poll(api, driver, wait=0)) == 1


def test_driver_events_out_of_order_keep_the_later_one(app: Flask, api: Api) -> None:
    # What another process's events look like here: each carries the row version after it.
    directory = app.extensions["dispatch"].drivers
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    base = directory.entries[driver.id].version
    directory.apply_event(driver.id, "en_route", "standard", "77", base + 2)
    directory.apply_event(driver.id, "offered", "standard", "77", base + 1)
    entry = directory.entries[driver.id]
    assert (entry.status, entry.trip_id, entry.version) == (DriverStatus.en_route, "77",
                                                            base + 2)
    # Gone offline at a later version: an older event does not bring the driver back.
    directory.apply_event(driver.id, "offline", "standard", None, base + 4)
    directory.apply_event(driver.id, "available", "standard", None, base + 3)
    assert driver.id not in directory.entries
    # A newer one does.
    directory.apply_event(driver.id, "available", "standard", None, base + 5)
    assert directory.entries[driver.id].status == DriverStatus.available


class ChangeAfterReading:
    """A read-only unit of work that, as it closes, lets a change commit and mirror: what
    another request thread does while the reconcile holds a page it read."""

    def __init__(self, inner: Any, change: Any) -> None:
        self.inner, self.change = inner, change

    def __enter__(self) -> Any:
        return self.inner.__enter__()

    def __exit__(self, *exc: object) -> Any:
        out = self.inner.__exit__(*exc)
        self.change()
        return out


def test_a_reconcile_page_read_before_a_change_does_not_undo_it(app: Flask, api: Api) -> None:
    directory = app.extensions["dispatch"].drivers
    driver = sign_up_driver(api)
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    rider = sign_up_rider(api)
    publish(app)
    plain = directory.units

    def offer_a_trip() -> None:
        directory.units = plain
        request_trip(api, rider)  # the driver, read as available, is offered a trip

    directory.units = lambda readonly=False: ChangeAfterReading(plain(readonly), offer_a_trip)
    try:
        directory.reconcile()
    finally:
        directory.units = plain
    entry = directory.entries[driver.id]
    assert entry.status == DriverStatus.offered, entry
    assert len(long_poll(api, driver, wait=0)) == 1
