"""Available drivers per H3 cell kept at publish time agree with a recount of the snapshot."""

from __future__ import annotations

from collections import Counter

import h3
import numpy as np
import pytest

from geoindex import GeoIndex


def recount(snap, resolution: int) -> dict[str, int]:
    return dict(Counter(h3.latlng_to_cell(d.lat, d.lng, resolution)
                        for d in snap.drivers(now=snap.published_at) if d.available))


@pytest.mark.parametrize("backend", ["quadtree", "h3"])
@pytest.mark.parametrize("resolution", [7, 9])
def test_counts_follow_moves_availability_removals_and_expiry(backend, resolution):
    rng = np.random.default_rng(resolution)
    clock = [1000.0]
    idx = GeoIndex(backend=backend, clock=lambda: clock[0], ttl_s=30.0, compact_ratio=0.3)
    n = 800
    ids = [f"d{i}" for i in range(n)]
    lats = 40.75 + rng.normal(0, 0.03, n)
    lngs = -73.98 + rng.normal(0, 0.03, n)
    idx.upsert_many(ids[:300], lats[:300], lngs[:300])
    idx.publish()
    idx.keep_supply(resolution)  # turned on with drivers already in: they are counted too
    idx.upsert_many(ids, lats, lngs, available=rng.random(n) < 0.7)
    snaps = []
    for step in range(12):
        clock[0] += 4.0
        sel = rng.choice(n, 150, replace=False)
        if step % 3 != 2:  # the others go stale in time and are swept
            lats[sel] += rng.normal(0, 0.004, 150)
            lngs[sel] += rng.normal(0, 0.004, 150)
            idx.upsert_many([ids[i] for i in sel.tolist()], lats[sel], lngs[sel],
                            available=rng.random(150) < 0.6)
        for i in rng.choice(n, 20, replace=False).tolist():
            if rng.random() < 0.5:
                idx.remove(ids[i])
            else:
                idx.upsert(ids[i], float(lats[i]), float(lngs[i]), ts=clock[0])
                idx.set_available(ids[i], bool(rng.random() < 0.5))
        snap = idx.publish()
        kept = snap.available_per_cell(resolution)
        assert kept == recount(snap, resolution)
        assert sum(kept.values()) == snap.available
        snaps.append((snap, dict(kept)))
    assert snap.available_per_cell(resolution + 1) is None  # not kept at another resolution
    for old, counted in snaps:  # copy-on-write: later publishes never change an old snapshot
        assert old.available_per_cell(resolution) == counted
    assert snaps[0][1] != snaps[-1][1]


def test_not_kept_unless_asked():
    idx = GeoIndex(clock=lambda: 0.0)
    idx.upsert("a", 40.7, -74.0)
    assert idx.publish().available_per_cell(7) is None
    with pytest.raises(ValueError, match="resolution"):
        idx.keep_supply(16)


M_PER_DEG = 6_371_008.8 * np.pi / 180


def _offset(lat: float, lng: float, towards: tuple[float, float], delta_m: float
            ) -> tuple[float, float]:
    """The point on the line from (lat, lng) towards `towards`, `delta_m` metres beyond it
    (negative: short of it); flat, short range."""
    cos = np.cos(np.radians(lat))
    dx, dy = (towards[1] - lng) * M_PER_DEG * cos, (towards[0] - lat) * M_PER_DEG
    k = 1 + delta_m / float(np.hypot(dx, dy))
    return lat + dy * k / M_PER_DEG, lng + dx * k / (M_PER_DEG * cos)


@pytest.mark.parametrize("resolution", [7, 9])
def test_a_driver_just_across_an_edge_or_near_a_corner_is_counted_where_h3_puts_them(
        resolution):
    # A small move skips latlng_to_cell only inside the cell's inscribed circle: points just
    # across an edge (a metre past its midpoint) and just inside a corner are recounted.
    centre_cell = h3.latlng_to_cell(40.75, -73.98, resolution)
    lat0, lng0 = h3.cell_to_latlng(centre_cell)
    corners = h3.cell_to_boundary(centre_cell)
    mids = [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
            for a, b in zip(corners, corners[1:] + corners[:1], strict=True)]
    spots = [_offset(lat0, lng0, mid, delta) for mid in mids for delta in (1.0, -1.0)]
    spots += [_offset(lat0, lng0, corner, -2.0) for corner in corners]
    idx = GeoIndex(clock=lambda: 0.0, ttl_s=1e9)
    idx.keep_supply(resolution)
    ids = [f"d{i}" for i in range(len(spots))]
    idx.upsert_many(ids, [lat0] * len(spots), [lng0] * len(spots), ts=0.0)
    assert idx.publish().available_per_cell(resolution) == {centre_cell: len(spots)}
    idx.upsert_many(ids, [s[0] for s in spots], [s[1] for s in spots], ts=0.0)
    snap = idx.publish()
    assert snap.available_per_cell(resolution) == recount(snap, resolution)
    assert len(snap.available_per_cell(resolution)) > 1  # some did cross


def test_a_move_inside_the_cells_circle_is_not_recomputed(monkeypatch):
    # The shortcut itself: ten drivers move 20 m inside a resolution-7 cell (its inscribed
    # circle is over a kilometre); none of them costs a latlng_to_cell call.
    from geoindex import supply

    idx = GeoIndex(clock=lambda: 0.0, ttl_s=1e9)
    idx.keep_supply(7)
    lat0, lng0 = h3.cell_to_latlng(h3.latlng_to_cell(40.75, -73.98, 7))
    ids = [f"d{i}" for i in range(10)]
    idx.upsert_many(ids, [lat0] * 10, [lng0] * 10, ts=0.0)
    idx.publish()
    calls = []
    real = supply.h3i.latlng_to_cell
    monkeypatch.setattr(supply.h3i, "latlng_to_cell",
                        lambda *a: calls.append(a) or real(*a))
    idx.upsert_many(ids, [lat0 + 0.00018] * 10, [lng0] * 10, ts=0.0)  # 20 m north
    snap = idx.publish()
    assert calls == []
    assert snap.available_per_cell(7) == recount(snap, 7)
