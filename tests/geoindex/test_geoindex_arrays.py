"""nearest_many_arrays (the columnar batch query) against brute force, nearest_many and nearest,
on dense clusters (where the quadtree answers by cells) and sparse points (its tree walk)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoindex import GeoIndex, NearestArrays, haversine_m
from geoindex.kernels import QT_LEVELS, morton_key
from geoindex.qt_nearest import _cell

from .test_geoindex_nearest import brute

BACKENDS = ["quadtree", "h3"]
# City-dense clusters, one across the antimeridian, one near a pole, one at the equator.
CENTRES = [(40.75, -73.98), (0.0, 179.999), (-33.9, -180.0), (89.95, 10.0), (0.0, 0.0)]
SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _wrap(lng: float) -> float:
    return ((lng + 180.0) % 360.0) - 180.0


def _fleet(seed: int, n: int, spread: float) -> list[tuple[str, float, float, bool, str, float]]:
    """(id, lat, lng, available, class, ts): clusters, some exact duplicates, a few loners;
    all fresh at the publish (clock 100, TTL 30), some stale for a query at now=125."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        clat, clng = CENTRES[int(rng.integers(len(CENTRES)))]
        if i % 17 == 0:
            lat, lng = float(rng.uniform(-90, 90)), float(rng.uniform(-180, 180))
        else:
            lat = float(np.clip(clat + rng.normal(0, spread), -90, 90))
            lng = _wrap(clng + rng.normal(0, spread))
        if i % 11 == 1:  # an exact duplicate of the previous driver's position: a tie
            lat, lng = rows[-1][1], rows[-1][2]
        rows.append((f"d{i:04d}", lat, lng, bool(rng.random() < 0.8),
                     "xl" if rng.random() < 0.2 else "standard", float(rng.uniform(70.0, 100.0))))
    return rows


def _index(backend: str, rows, moved: int = 0, seed: int = 0):
    """An index whose snapshot has a base, a delta and masked base entries (moved drivers)."""
    clock = [100.0]
    idx = GeoIndex(backend=backend, clock=lambda: clock[0], ttl_s=30.0, compact_ratio=10.0)
    idx.upsert_many([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                    available=[r[3] for r in rows], vehicle_class=[r[4] for r in rows],
                    ts=[r[5] for r in rows])
    idx.publish()
    drivers = {r[0]: r[1:] for r in rows}
    rng = np.random.default_rng(seed + 1)
    for i in rng.choice(len(rows), min(moved, len(rows)), replace=False).tolist():
        did, lat, lng, avail, cls, _ = rows[i]
        lat = float(np.clip(lat + rng.normal(0, 0.001), -90, 90))
        lng = _wrap(lng + rng.normal(0, 0.001))
        idx.upsert(did, lat, lng, available=avail, vehicle_class=cls, ts=100.0)
        drivers[did] = (lat, lng, avail, cls, 100.0)
    return idx, idx.publish(), drivers


def _queries(rng, n: int, drivers) -> tuple[np.ndarray, np.ndarray]:
    pts = list(drivers.values())
    lats, lngs = [], []
    for i in range(n):
        if i % 5 == 0:  # anywhere, often with no driver in reach
            lats.append(float(rng.uniform(-90, 90)))
            lngs.append(float(rng.uniform(-180, 180)))
        else:
            lat, lng = pts[int(rng.integers(len(pts)))][:2]
            lats.append(float(np.clip(lat + rng.normal(0, 0.003), -90, 90)))
            lngs.append(_wrap(lng + rng.normal(0, 0.003)))
    return np.array(lats), np.array(lngs)


def _rows(arr: NearestArrays, i: int) -> list[tuple[str, float]]:
    c = int(arr.count[i])
    return list(zip(arr.driver_ids(i), arr.distance_m[i, :c].tolist(), strict=True))


def _check_padding(arr: NearestArrays, k: int) -> None:
    assert arr.index.shape == arr.distance_m.shape == (len(arr), k)
    for i in range(len(arr)):
        c = int(arr.count[i])
        assert 0 <= c <= k
        assert (arr.index[i, c:] == -1).all() and np.isinf(arr.distance_m[i, c:]).all()
        assert (arr.index[i, :c] >= 0).all()
        assert (np.diff(arr.distance_m[i, :c]) >= 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.sampled_from([0, 40, 600, 2500]),
       spread=st.sampled_from([0.002, 0.02]), moved=st.sampled_from([0, 30]),
       k=st.sampled_from([1, 3, 10, 40]), radius=st.sampled_from([0.0, 60.0, 800.0, 5e4, 3e7]),
       available_only=st.booleans(), vehicle_class=st.sampled_from([None, "standard", "xl"]),
       now=st.sampled_from([None, 95.0, 125.0]))
def test_arrays_match_brute_force_and_nearest(backend, seed, n, spread, moved, k, radius,
                                              available_only, vehicle_class, now):
    rows = _fleet(seed, n, spread)
    _idx, snap, drivers = _index(backend, rows, moved, seed)
    lats, lngs = _queries(np.random.default_rng(seed), 30, drivers or {"x": (40.7, -74.0)})
    filters = {"available_only": available_only, "vehicle_class": vehicle_class, "now": now}
    arr = snap.nearest_many_arrays(lats, lngs, k=k, radius_m=radius, **filters)
    _check_padding(arr, k)
    many = snap.nearest_many(lats, lngs, k=k, radius_m=radius, **filters)
    at = 100.0 if now is None else now
    for i, (lat, lng) in enumerate(zip(lats.tolist(), lngs.tolist(), strict=True)):
        want = brute(drivers, lat, lng, k, radius, available_only, vehicle_class, now=at)
        got = _rows(arr, i)
        assert [g[0] for g in got] == [w[1] for w in want]
        assert [g[1] for g in got] == pytest.approx([w[0] for w in want], abs=1e-6)
        one = snap.nearest(lat, lng, k=k, radius_m=radius, **filters)
        assert many[i] == one
        assert [(nb.driver_id, nb.distance_m) for nb in one] == got
        c = int(arr.count[i])
        for r, nb in enumerate(one):  # every column agrees with the Neighbor
            assert (arr.lat[i, r], arr.lng[i, r], arr.ts[i, r]) == (nb.lat, nb.lng, nb.ts)
            assert arr.vehicle_class(int(arr.class_code[i, r])) == nb.vehicle_class
            assert bool(arr.available[i, r]) == nb.available
            assert arr.driver_id(int(arr.index[i, r])) == nb.driver_id
        assert c == len(one)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_city_agrees_with_brute_force(backend):
    """Thousands of drivers in one city: the quadtree's cell path, not its fallback."""
    rows = _fleet(7, 4000, 0.01)
    _idx, snap, drivers = _index(backend, rows, moved=200)
    rng = np.random.default_rng(3)
    lats = 40.75 + rng.normal(0, 0.01, 300)
    lngs = -73.98 + rng.normal(0, 0.01, 300)
    arr = snap.nearest_many_arrays(lats, lngs, k=10, radius_m=3000.0)
    assert int(arr.count.sum()) > 0
    for i in range(len(arr)):
        want = brute(drivers, lats[i], lngs[i], 10, 3000.0)
        got = _rows(arr, i)
        assert [g[0] for g in got] == [w[1] for w in want]
        assert [g[1] for g in got] == pytest.approx([w[0] for w in want], abs=1e-6)


@pytest.mark.parametrize("vehicle_class", [None, "xl"])
def test_each_query_bounded_by_the_previous_ones_neighbours(vehicle_class):
    """In a batch (run in Morton order) a query's first bound is the farthest of the previous
    query's k nearest (``qt_nearest.seed_bound``): points repeated, a step apart and far apart
    still get exactly the brute-force answer, with the filters the neighbours passed."""
    rows = _fleet(23, 3000, 0.01)
    _idx, snap, drivers = _index("quadtree", rows, moved=150)
    rng = np.random.default_rng(5)
    lats = np.concatenate([np.full(20, 40.75), 40.75 + np.cumsum(rng.normal(0, 2e-4, 200)),
                           rng.normal(40.75, 0.02, 100)])
    lngs = np.concatenate([np.full(20, -73.98), -73.98 + np.cumsum(rng.normal(0, 2e-4, 200)),
                           rng.normal(-73.98, 0.02, 100)])
    arr = snap.nearest_many_arrays(lats, lngs, k=7, radius_m=5000.0,
                                   vehicle_class=vehicle_class)
    for i in range(len(arr)):
        want = brute(drivers, lats[i], lngs[i], 7, 5000.0, True, vehicle_class)
        assert [g[0] for g in _rows(arr, i)] == [w[1] for w in want]


def test_remembered_cell_ranges_match_a_binary_search():
    """The batch's table of cell ranges (``qt_nearest._cell``) answers for its own level and
    prefix only: the same prefix at another level, on the same row, is searched again."""
    rows = _fleet(5, 3000, 0.02)
    _idx, snap, _ = _index("quadtree", rows, moved=100)
    bK, _bF, _bM, _mask, dK, _dF, _dM = snap._parts
    table = np.full((1, 5), -1, np.int64)  # one row: every cell shares it
    rng = np.random.default_rng(1)
    differed = 0
    for _ in range(100):
        level = int(rng.integers(6, 20))
        lat, lng = rows[int(rng.integers(len(rows)))][1:3]
        prefix = morton_key(lat, lng) >> (2 * (QT_LEVELS - level))
        got = []
        for lv in (level, level + 1, level):
            lo, hi = prefix << (2 * (QT_LEVELS - lv)), (prefix + 1) << (2 * (QT_LEVELS - lv))
            want = (*np.searchsorted(bK, [lo, hi]), *np.searchsorted(dK, [lo, hi]))
            got.append(_cell(bK, dK, lv, prefix, table))
            assert got[-1] == tuple(int(w) for w in want)
        differed += got[0] != got[1]
    assert differed > 50  # the same prefix at the next level is mostly elsewhere


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_index_no_neighbours_and_no_queries(backend):
    idx = GeoIndex(backend=backend, clock=lambda: 0.0)
    snap = idx.publish()
    arr = snap.nearest_many_arrays([40.7, -10.0], [-74.0, 20.0], k=4, radius_m=1000.0)
    assert arr.count.tolist() == [0, 0]
    _check_padding(arr, 4)
    assert snap.nearest_many([40.7], [-74.0]) == [[]]
    idx.upsert("a", 40.7, -74.0)
    snap = idx.publish()
    arr = snap.nearest_many_arrays([40.7, 41.7, 40.7001], [-74.0, -74.0, -74.0], k=3,
                                   radius_m=1000.0)
    assert arr.count.tolist() == [1, 0, 1]  # the second is 111 km away
    assert arr.driver_ids(0) == ["a"] and arr.driver_ids(1) == []
    assert arr.distance_m[2, 0] == pytest.approx(haversine_m(40.7001, -74.0, 40.7, -74.0))
    none = snap.nearest_many_arrays([], [], k=5)
    assert len(none) == 0 and none.index.shape == (0, 5)
    unknown = snap.nearest_many_arrays([40.7], [-74.0], vehicle_class="helicopter")
    assert unknown.count.tolist() == [0] and (unknown.index == -1).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_ordered_by_id(backend):
    idx = GeoIndex(backend=backend, clock=lambda: 0.0)
    for name in ["e", "c", "a", "d", "b"]:
        idx.upsert(name, 40.7, -74.0)
    for i in range(40):  # enough drivers nearby for the cell path
        idx.upsert(f"z{i:02d}", 40.7 + 0.0001 * (i + 1), -74.0)
    snap = idx.publish()
    arr = snap.nearest_many_arrays([40.7, 40.7], [-74.0, -74.0], k=3, radius_m=500.0)
    assert arr.driver_ids(0) == arr.driver_ids(1) == ["a", "b", "c"]
    assert arr.driver_ids(0) == [n.driver_id for n in snap.nearest(40.7, -74.0, k=3)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_answer_never_changes_after_publish(backend):
    """Copy-on-write: a snapshot's columns answer for its version while the writer moves on."""
    rows = _fleet(11, 800, 0.01)
    idx, snap, _ = _index(backend, rows)
    lats, lngs = np.full(5, 40.75), np.linspace(-74.0, -73.96, 5)
    before = snap.nearest_many_arrays(lats, lngs, k=8, radius_m=2000.0)
    for did, *_ in rows[:400]:
        idx.upsert(did, 40.75, -73.98, ts=100.0)
    idx.remove(rows[500][0])
    idx.publish()
    again = snap.nearest_many_arrays(lats, lngs, k=8, radius_m=2000.0)
    assert np.array_equal(before.index, again.index)
    assert np.array_equal(before.distance_m, again.distance_m)
    fresh = idx.snapshot().nearest_many_arrays(lats, lngs, k=8, radius_m=2000.0)
    assert not np.array_equal(before.index, fresh.index)


def test_bad_input_names_the_field():
    snap = GeoIndex(clock=lambda: 0.0).publish()
    for args, kw, field in ((([math.nan], [0.0]), {}, "lats"), (([0.0], [181.0]), {}, "lngs"),
                            (([0.0, 1.0], [0.0]), {}, "lngs"), (([0.0], [0.0]), {"k": 0}, "k"),
                            (([0.0], [0.0]), {"radius_m": -1.0}, "radius_m"),
                            (([0.0], [0.0]), {"colour": "red"}, "filters"),
                            (([0.0], [0.0]), {"vehicle_class": 3}, "vehicle_class")):
        with pytest.raises(ValueError, match=field):
            snap.nearest_many_arrays(*args, **kw)
