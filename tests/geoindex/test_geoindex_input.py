"""Bad input raises ValueError naming the field; upsert_many rejects rows and keeps the rest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geoindex import GeoIndex

BAD_COORDS = [(math.nan, 0.0, "lat"), (0.0, math.inf, "lng"), (90.5, 0.0, "lat"),
              (0.0, -180.01, "lng"), ("1", 0.0, "lat"), (None, 0.0, "lat")]


@pytest.fixture(params=["quadtree", "h3"])
def idx(request):
    i = GeoIndex(backend=request.param, clock=lambda: 0.0)
    i.upsert("a", 40.7, -74.0)
    i.publish()
    return i


@pytest.mark.parametrize("lat,lng,field", BAD_COORDS)
def test_bad_coordinates(idx, lat, lng, field):
    snap = idx.snapshot()
    for call in (lambda: idx.upsert("x", lat, lng), lambda: snap.nearest(lat, lng),
                 lambda: snap.within(lat, lng, 10.0),
                 lambda: snap.explain_nearest(lat, lng),
                 lambda: snap.nearest_many([lat], [lng])):
        with pytest.raises(ValueError, match=field):
            call()


def test_bad_scalars(idx):
    snap = idx.snapshot()
    with pytest.raises(ValueError, match="driver_id"):
        idx.upsert("", 0.0, 0.0)
    with pytest.raises(ValueError, match="driver_id"):
        idx.upsert(7, 0.0, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ts"):
        idx.upsert("x", 0.0, 0.0, ts=math.nan)
    with pytest.raises(ValueError, match="vehicle_class"):
        idx.upsert("x", 0.0, 0.0, vehicle_class="")
    with pytest.raises(ValueError, match="available"):
        idx.upsert("x", 0.0, 0.0, available="yes")  # type: ignore[arg-type]
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="k"):
            snap.nearest(0.0, 0.0, k=k)
        with pytest.raises(ValueError, match="k"):
            snap.nearest_many([0.0], [0.0], k=k)
    for r in (-1.0, math.nan):
        with pytest.raises(ValueError, match="radius_m"):
            snap.nearest(0.0, 0.0, radius_m=r)
        with pytest.raises(ValueError, match="radius_m"):
            snap.within(0.0, 0.0, r)
    with pytest.raises(ValueError, match="lngs"):
        snap.nearest_many([0.0, 1.0], [0.0])
    with pytest.raises(ValueError, match="vehicle_class"):
        snap.nearest(0.0, 0.0, vehicle_class=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now"):
        snap.nearest(0.0, 0.0, now=math.nan)
    with pytest.raises(ValueError, match="driver_id"):
        snap.get("")
    with pytest.raises(ValueError, match="driver_id"):
        idx.remove("")
    with pytest.raises(ValueError, match="available"):
        idx.set_available("a", 1)  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        idx.set_available("nobody", True)
    assert idx.remove("nobody") is False
    with pytest.raises(ValueError, match="backend"):
        GeoIndex(backend="kdtree")
    with pytest.raises(ValueError, match="resolution"):
        GeoIndex(backend="h3", resolution=16)
    with pytest.raises(ValueError, match="ttl_s"):
        GeoIndex(ttl_s=0)
    with pytest.raises(ValueError, match="bbox"):
        list(snap.drivers((0.0, 0.0, 1.0)))  # type: ignore[arg-type]


def test_upsert_many_rejects_rows_and_applies_the_rest(idx):
    ids = ["ok1", "", "ok2", "nan", "far", None, "ok3", "badts"]
    lats = [40.7, 40.7, 40.71, math.nan, 95.0, 40.7, 40.72, 40.7]
    lngs = [-74.0, -74.0, -74.0, -74.0, -74.0, -74.0, -74.0, -74.0]
    ts = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, math.inf]
    res = idx.upsert_many(ids, np.array(lats), lngs, ts=ts)
    assert res.applied == 3
    assert [(r.row, r.field) for r in res.rejected] == [
        (1, "driver_id"), (3, "lat"), (4, "lat"), (5, "driver_id"), (7, "ts")]
    snap = idx.publish()
    assert {n.driver_id for n in snap.nearest(40.7, -74.0, k=10)} == {"a", "ok1", "ok2", "ok3"}
    for field, kw in (("lats", {"lats": [1.0]}), ("lngs", {"lngs": [1.0]})):
        args = {"driver_ids": ["p", "q"], "lats": [1.0, 2.0], "lngs": [1.0, 2.0]} | kw
        with pytest.raises(ValueError, match=field):
            idx.upsert_many(**args)
    with pytest.raises(ValueError, match="available"):
        idx.upsert_many(["p", "q"], [1.0, 2.0], [1.0, 2.0], available=[True])
    with pytest.raises(ValueError, match="vehicle_class"):
        idx.upsert_many(["p", "q"], [1.0, 2.0], [1.0, 2.0], vehicle_class=["xl"])
    with pytest.raises(ValueError, match="ts"):
        idx.upsert_many(["p", "q"], [1.0, 2.0], [1.0, 2.0], ts=[1.0])


def test_upsert_many_refuses_ids_that_are_not_plain_strings_among_plain_ones(idx):
    """Plain-string batches take a fast lookup; one id of another type (a str subclass such as
    numpy's, even one equal to a known driver's id; an unhashable list) still gets its own
    refusal and the rest still apply."""
    idx.upsert("s2", 40.0, -73.0, ts=0.0)
    ids = ["s1", np.str_("s2"), "", "s3", ["s4"]]
    res = idx.upsert_many(ids, [40.7] * 5, [-74.0] * 5, ts=1.0)
    assert res.applied == 2
    assert [(r.row, r.field) for r in res.rejected] == [
        (1, "driver_id"), (2, "driver_id"), (4, "driver_id")]
    snap = idx.publish()
    assert snap.get("s2").lat == 40.0  # the refused row did not move the known driver
    found = {n.driver_id for n in snap.nearest(40.7, -74.0, k=10)}
    assert found & {"s1", "s2", "s3"} == {"s1", "s3"}
