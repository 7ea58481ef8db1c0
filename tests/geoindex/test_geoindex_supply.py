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
