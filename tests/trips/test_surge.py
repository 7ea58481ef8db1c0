"""Surge: demand against supply over a cell and its neighbours, windowed, smoothed, capped."""

from __future__ import annotations

import threading
from decimal import Decimal

import h3
import pytest

from trips.surge import SurgePricer

LAT, LNG = 40.7580, -73.9855  # Times Square


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pricer(clock: Clock, **kw: object) -> SurgePricer:
    # alpha=1 and no update interval isolate the raw demand/supply response.
    opts: dict[str, object] = {"alpha": 1.0, "update_interval_s": 0.0} | kw
    return SurgePricer(resolution=7, window_s=300, clock=clock, **opts)  # type: ignore[arg-type]


def centre(cell: str) -> tuple[float, float]:
    lat, lng = h3.cell_to_latlng(cell)
    return lat, lng


def add(p: SurgePricer, n: int, lat: float = LAT, lng: float = LNG) -> None:
    for _ in range(n):
        p.record_request(lat, lng)


def test_no_demand_is_no_surge() -> None:
    p = pricer(Clock())
    m = p.multiplier(LAT, LNG, {})
    assert m == Decimal("1.0") and type(m) is Decimal


def test_rises_with_demand() -> None:
    clock = Clock()
    p = pricer(clock)
    cell = p.cell(LAT, LNG)
    supply = {cell: 10}
    add(p, 10)
    assert p.multiplier(LAT, LNG, supply) == Decimal("1.0")  # demand == supply
    add(p, 5)
    assert p.multiplier(LAT, LNG, supply) == Decimal("1.5")
    add(p, 5)
    assert p.multiplier(LAT, LNG, supply) == Decimal("2.0")


def test_falls_with_supply() -> None:
    p = pricer(Clock())
    cell = p.cell(LAT, LNG)
    add(p, 20)
    assert p.multiplier(LAT, LNG, {cell: 8}) == Decimal("2.5")
    assert p.multiplier(LAT, LNG, {cell: 10}) == Decimal("2.0")
    assert p.multiplier(LAT, LNG, lambda c: 40 if c == cell else 0) == Decimal("1.0")


def test_capped_and_stepped() -> None:
    p = pricer(Clock())
    add(p, 500)
    assert p.multiplier(LAT, LNG, {}) == Decimal("3.0")
    q = pricer(Clock(), cap="2.2")
    add(q, 500)
    assert q.multiplier(LAT, LNG, {}) == Decimal("2.2")
    r = pricer(Clock())
    cell = r.cell(LAT, LNG)
    add(r, 10)
    m = r.multiplier(LAT, LNG, {cell: 7})  # raw 10/7 = 1.428...
    assert m == Decimal("1.4") and m % Decimal("0.1") == 0


def test_smoothed_across_updates() -> None:
    clock = Clock()
    p = pricer(clock, alpha=0.5, update_interval_s=30.0)
    add(p, 100)  # raw is the cap, 3.0
    assert p.multiplier(LAT, LNG, {}) == Decimal("2.0")  # 1 + 0.5 x (3 - 1)
    add(p, 100)
    assert p.multiplier(LAT, LNG, {}) == Decimal("2.0")  # same update interval: same quote
    clock.now += 30
    assert p.multiplier(LAT, LNG, {}) == Decimal("2.5")
    clock.now += 30
    assert p.multiplier(LAT, LNG, {}) == Decimal("2.8")  # 2.75 rounds half up


def test_window_expiry_with_injected_clock() -> None:
    clock = Clock(0.0)
    p = pricer(clock)
    cell = p.cell(LAT, LNG)
    add(p, 30)
    clock.now = 299.0
    assert p.demand(cell) == 30 and p.multiplier(LAT, LNG, {cell: 10}) == Decimal("3.0")
    clock.now = 300.0
    assert p.demand(cell) == 0 and p.multiplier(LAT, LNG, {cell: 10}) == Decimal("1.0")


def test_explicit_timestamps_out_of_order_and_stale() -> None:
    clock = Clock(1000.0)
    p = pricer(clock)
    cell = p.record_request(LAT, LNG, ts=990.0)
    p.record_request(LAT, LNG, ts=800.0)
    p.record_request(LAT, LNG, ts=600.0)  # already outside the window: ignored
    assert p.demand(cell) == 2
    clock.now = 1100.0  # the ts=800 one expires first, although recorded second
    assert p.demand(cell) == 1


def test_neighbours_count_but_not_further() -> None:
    p = pricer(Clock())
    cell = p.cell(LAT, LNG)
    ring1 = sorted(h3.grid_ring(cell, 1))
    ring2 = sorted(h3.grid_ring(cell, 2))
    add(p, 20, *centre(ring1[0]))
    add(p, 50, *centre(ring2[0]))
    assert p.demand(cell) == 20
    assert p.multiplier(LAT, LNG, {ring1[3]: 10}) == Decimal("2.0")  # neighbour supply counts
    assert p.multiplier(LAT, LNG, {ring2[3]: 10}) == Decimal("3.0")  # ring 2 supply does not


def test_snapshot_for_the_map() -> None:
    clock = Clock()
    p = pricer(clock, alpha=0.5)
    cell = p.cell(LAT, LNG)
    add(p, 100)
    assert p.multiplier(LAT, LNG, {}) == Decimal("2.0")
    snap = p.snapshot()
    assert snap == {cell: Decimal("2.0")} and all(type(v) is Decimal for v in snap.values())
    clock.now += 600  # demand expired: the surge decays over updates, then is forgotten
    assert p.multiplier(LAT, LNG, {}) == Decimal("1.5")
    for _ in range(10):
        p.multiplier(LAT, LNG, {})
    assert p.snapshot() == {}


def test_thread_safe_recording() -> None:
    p = pricer(Clock())
    cell = p.cell(LAT, LNG)

    def worker() -> None:
        for _ in range(2000):
            p.record_request(LAT, LNG)
            p.multiplier(LAT, LNG, {cell: 1})

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert p.demand(cell) == 16_000


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda p: p.record_request(float("nan"), LNG), "lat"),
        (lambda p: p.record_request(LAT, 181.0), "lng"),
        (lambda p: p.record_request(LAT, LNG, ts=float("inf")), "ts"),
        (lambda p: p.multiplier(LAT, LNG, {p.cell(LAT, LNG): -1}), "supply"),
        (lambda p: SurgePricer(cap="0.5"), "cap"),
        (lambda p: SurgePricer(window_s=0), "window_s"),
        (lambda p: SurgePricer(alpha=0), "alpha"),
    ],
)
def test_bad_input_names_the_field(call: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        call(pricer(Clock()))  # type: ignore[operator]
