"""A driver's position and their status reach the live index by two paths: a location write
(the embedded mode's post, the scaled mode's stream entry) carries the availability this
process read just before, and a status change (a claim, going offline) writes the index when
it is mirrored. When the status change lands between that read and the position's write, the
write must not undo it: a busy driver left available to nearby and dispatch, or a driver who
went offline put back on the riders' map until their position went stale (30 s).

Each test makes the race happen for certain: the index's write runs the status change first,
exactly where another thread could. No service needed; the directory's memory is the
process's own."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from dispatch.drivers import DriverDirectory
from dispatch.feed import apply_location_entry, encode_entry
from dispatch.model import DriverStatus
from geoindex import GeoIndex
from tests.dispatch.conftest import directory_for

LAT, LNG = 40.75, -73.98


def entry(ids: list[str], available: bool) -> dict[bytes, bytes]:
    """A stream entry as another process posted it, read back as Redis returns it."""
    n = len(ids)
    fields: dict[str, Any] = encode_entry(
        "poster", ids, LAT + np.arange(n) * 1e-4, np.full(n, LNG), np.full(n, available),
        np.full(n, time.time()), ["standard"] * n)
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}


def change_during_next_write(index: GeoIndex, monkeypatch: pytest.MonkeyPatch,
                             change: Callable[[], None]) -> list[bool]:
    """Run `change` inside the index's next position write, before it writes; the list
    returned gets a True once it ran."""
    ran: list[bool] = []
    for name in ("upsert", "upsert_many"):
        real = getattr(index, name)

        def racing(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if not ran:
                ran.append(True)
                change()
            return _real(*args, **kwargs)

        monkeypatch.setattr(index, name, racing)
    return ran


def online(directory: DriverDirectory, *ids: str) -> dict[str, int]:
    """Drivers online and placed; their row versions."""
    versions = {d: directory.go_online(d, "standard").version for d in ids}
    directory.update_location_columns(list(ids), [LAT] * len(ids), [LNG] * len(ids), None)
    return versions


def available_in_index(index: GeoIndex, driver_id: str) -> bool | None:
    """The published availability; None when the driver is not in the index."""
    pos = index.publish().get(driver_id)
    return None if pos is None else bool(pos.available)


@pytest.mark.parametrize("change", ["claimed", "gone offline"])
@pytest.mark.parametrize("batch", [["1"], ["1", "2"]], ids=["one driver", "a batch"])
def test_a_status_change_during_a_location_post_is_not_undone(
        batch: list[str], change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claimed: the driver stays busy in the index. Gone offline: off the map."""
    index = GeoIndex(ttl_s=10_000)
    directory = directory_for(index)
    v = online(directory, *batch)["1"] + 1
    ran = change_during_next_write(index, monkeypatch, (
        lambda: directory.set_status("1", DriverStatus.en_route, "9", v)) if change == "claimed"
        else lambda: directory.apply_event("1", "offline", "standard", None, v))
    accepted, rejected = directory.update_location_columns(
        batch, [LAT + 1e-4] * len(batch), [LNG] * len(batch), None)
    assert ran and accepted == len(batch) and not rejected
    assert available_in_index(index, "1") is (False if change == "claimed" else None)
    if len(batch) > 1:
        assert available_in_index(index, "2") is True  # the others keep the view they had


def test_a_claim_during_a_stream_entry_apply_keeps_the_driver_busy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    index = GeoIndex(ttl_s=10_000)
    directory = directory_for(index)
    directory.apply_event("1", "available", "standard", None, 1)
    directory.apply_event("2", "available", "standard", None, 1)
    apply_location_entry(index, entry(["1", "2"], True), directory)
    ran = change_during_next_write(index, monkeypatch, lambda: directory.apply_event(
        "1", "en_route", "standard", "9", 2))
    assert apply_location_entry(index, entry(["1", "2"], True), directory) == 2
    assert ran
    assert (available_in_index(index, "1"), available_in_index(index, "2")) == (False, True)


def test_going_offline_during_a_stream_entry_apply_leaves_the_driver_off_the_map(
        monkeypatch: pytest.MonkeyPatch) -> None:
    index = GeoIndex(ttl_s=10_000)
    directory = directory_for(index)
    directory.apply_event("1", "available", "standard", None, 1)
    apply_location_entry(index, entry(["1"], True), directory)
    ran = change_during_next_write(index, monkeypatch, lambda: directory.apply_event(
        "1", "offline", "standard", None, 2))
    apply_location_entry(index, entry(["1"], True), directory)
    assert ran
    assert available_in_index(index, "1") is None


def test_an_entry_posted_before_the_driver_went_offline_does_not_bring_them_back() -> None:
    """Driver events and location entries travel on two streams, read by two threads: the
    offline event can be applied here before a location entry posted just before it."""
    index = GeoIndex(ttl_s=10_000)
    directory = directory_for(index)
    directory.apply_event("1", "available", "standard", None, 1)
    apply_location_entry(index, entry(["1", "2"], True), directory)
    directory.apply_event("1", "offline", "standard", None, 2)
    assert available_in_index(index, "1") is None
    assert apply_location_entry(index, entry(["1", "2"], True), directory) == 1
    assert available_in_index(index, "1") is None
    assert available_in_index(index, "2") is True  # a driver never known here: the poster's
    # Online again (a later version): their positions count again.
    directory.apply_event("1", "available", "standard", None, 3)
    apply_location_entry(index, entry(["1"], True), directory)
    assert available_in_index(index, "1") is True


def test_more_changes_than_the_log_holds_rewrites_every_row(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The changes are numbered in a bounded log: when more of them land during one write
    than it holds, which drivers changed is no longer known, and every row is written again
    as mirrored."""
    index = GeoIndex(ttl_s=10_000)
    directory = directory_for(index)
    monkeypatch.setattr(directory, "_changed", deque(maxlen=2))
    versions = online(directory, "1", "2", "3", "4")

    def many() -> None:
        directory.set_status("1", DriverStatus.en_route, "9", versions["1"] + 1)
        for d in ("3", "4"):  # fill the log with drivers outside the batch
            directory.set_status(d, DriverStatus.en_route, "8", versions[d] + 1)

    ran = change_during_next_write(index, monkeypatch, many)
    directory.update_location_columns(["1", "2"], [LAT + 1e-4] * 2, [LNG] * 2, None)
    assert ran
    assert (available_in_index(index, "1"), available_in_index(index, "2")) == (False, True)
