"""Snapshots: immutability, structural sharing, history, lookups, explain and concurrency."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from geoindex import GeoIndex, haversine_m

BACKENDS = ["quadtree", "h3"]


def fleet(backend, n=300, seed=1, **kw):
    rng = np.random.default_rng(seed)
    clock = [1000.0]
    idx = GeoIndex(backend=backend, clock=lambda: clock[0], **kw)
    ids = [f"d{i:04d}" for i in range(n)]
    lats = rng.uniform(40.70, 40.80, n)
    lngs = rng.uniform(-74.02, -73.93, n)
    idx.upsert_many(ids, lats, lngs, vehicle_class=["xl" if i % 4 == 0 else "standard"
                                                     for i in range(n)])
    return idx, ids, lats, lngs, clock


@pytest.mark.parametrize("backend", BACKENDS)
def test_snapshot_never_changes(backend):
    idx, ids, lats, lngs, _ = fleet(backend)
    s1 = idx.publish()
    before = s1.nearest(40.75, -73.98, k=20)
    cells_before = s1.cells()
    idx.upsert_many(ids[:100], lats[:100] + 0.01, lngs[:100])
    idx.remove(ids[200])
    idx.set_available(ids[201], False)
    s2 = idx.publish()
    assert s1.nearest(40.75, -73.98, k=20) == before
    assert s1.cells() == cells_before
    assert s1.get(ids[200]) is not None and s2.get(ids[200]) is None
    assert s1.get(ids[201]).available and not s2.get(ids[201]).available
    assert s2.version == s1.version + 1 and len(s2) == len(s1) - 1
    assert idx.snapshot() is s2


def test_publish_shares_the_base():
    idx, ids, lats, lngs, _ = fleet("quadtree", n=20000)
    s1 = idx.publish()
    idx.upsert(ids[5], 40.75, -73.99)
    s2 = idx.publish()
    assert s2._parts[0] is s1._parts[0] and s2._parts[1] is s1._parts[1]  # base shared
    assert s2._parts[4].shape[0] == 1  # the delta holds just the changed driver
    assert s2.publish_ms >= 0.0 and s2.total == 20000 and s2.available == 20000


@pytest.mark.parametrize("backend", BACKENDS)
def test_history_and_counts(backend):
    idx, ids, *_ = fleet(backend, history_size=3)
    for i in range(5):
        idx.set_available(ids[i], False)
        idx.publish()
    hist = idx.history()
    assert len(hist) == 3 and hist[0] is idx.snapshot()
    assert [s.version for s in hist] == sorted((s.version for s in hist), reverse=True)
    assert hist[0].available == 295 and hist[2].available == 297
    assert idx.history(1) == hist[:1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_cells_and_drivers(backend):
    idx, ids, lats, lngs, _ = fleet(backend)
    idx.set_available(ids[0], False)
    snap = idx.publish()
    cells = snap.cells()
    assert sum(c.total for c in cells) == 300 and sum(c.available for c in cells) == 299
    coarse = snap.cells(snap.resolution - 3)
    assert sum(c.total for c in coarse) == 300 and len(coarse) <= len(cells)
    box = (-74.0, 40.72, -73.95, 40.78)
    inside = {d.driver_id for d in snap.drivers(box)}
    want = {ids[i] for i in range(300) if 40.72 <= lats[i] <= 40.78 and -74 <= lngs[i] <= -73.95}
    assert inside == want
    assert len(list(snap.drivers())) == 300
    got = snap.get(ids[3])
    assert (got.lat, got.lng, got.vehicle_class) == (lats[3], lngs[3], "standard")
    assert snap.get("nobody") is None


def test_drivers_bbox_across_antimeridian():
    idx = GeoIndex(clock=lambda: 0.0)
    idx.upsert("e", 0.0, 179.5)
    idx.upsert("w", 0.0, -179.5)
    idx.upsert("x", 0.0, 0.0)
    snap = idx.publish()
    assert {d.driver_id for d in snap.drivers((179.0, -1.0, -179.0, 1.0))} == {"e", "w"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_explain_reasons(backend):
    idx = GeoIndex(backend=backend, clock=lambda: 100.0, ttl_s=30.0)
    idx.upsert("near", 40.7500, -73.9800)
    idx.upsert("xl", 40.7501, -73.9800, vehicle_class="xl")
    idx.upsert("busy", 40.7502, -73.9800, available=False)
    idx.upsert("old", 40.7503, -73.9800, ts=80.0)
    snap = idx.publish()
    ex = snap.explain_nearest(40.7500, -73.9801, k=5, radius_m=5.0, vehicle_class="standard",
                              now=115.0)
    assert [n.driver_id for n in ex.neighbors] == ["near"] or ex.neighbors == []
    assert ex.filtered_ids["class"] == ["xl"]
    assert ex.filtered_ids["unavailable"] == ["busy"]
    assert ex.filtered_ids["stale"] == ["old"]
    assert ex.candidates_examined >= 4 and ex.cells_searched and ex.rings_searched >= 1
    ex = snap.explain_nearest(40.7500, -73.9801, k=5, radius_m=3.0, now=100.0)
    assert "near" in ex.filtered_ids["too_far"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_readers_see_one_version_while_writer_publishes(backend):
    """Round r puts every driver at offset r with ts r; a snapshot mixing rounds is a bug."""
    n, rounds = 400, 25
    clock = [0.0]
    idx = GeoIndex(backend=backend, clock=lambda: clock[0], ttl_s=1e9)
    ids = [f"d{i}" for i in range(n)]
    rng = np.random.default_rng(3)
    lats0 = rng.uniform(40.70, 40.80, n)
    lngs0 = rng.uniform(-74.02, -73.93, n)
    idx.upsert_many(ids, lats0, lngs0, ts=0.0)
    idx.publish()
    errors: list[str] = []
    done = threading.Event()

    def reader(seed):
        r = np.random.default_rng(seed)
        while not done.is_set():
            snap = idx.snapshot()
            lat, lng = r.uniform(40.70, 40.80), r.uniform(-74.02, -73.93)
            got = snap.nearest(lat, lng, k=8, radius_m=2000.0)
            rounds_seen = {nb.ts for nb in snap.within(lat, lng, 1500.0)} | {nb.ts for nb in got}
            if len(rounds_seen) > 1:
                errors.append(f"mixed rounds {rounds_seen}")
                return
            if rounds_seen:
                off = rounds_seen.pop() * 1e-4
                want = sorted((haversine_m(lat, lng, la + off, ln), d)
                              for d, la, ln in zip(ids, lats0, lngs0, strict=False))
                want = [w for w in want if w[0] <= 2000.0][:8]
                if [nb.driver_id for nb in got] != [w[1] for w in want]:
                    errors.append("answer differs from its version")
                    return

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for r in range(1, rounds + 1):
        idx.upsert_many(ids, lats0 + r * 1e-4, lngs0, ts=float(r))
        idx.publish()
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
