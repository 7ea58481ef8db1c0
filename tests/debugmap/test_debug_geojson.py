"""The map's feature builders, without an app."""

from __future__ import annotations

import geojson
import h3

from dispatch import debug_geojson as gj
from dispatch.model import DispatchRecord, Offer, OfferState
from geoindex import DriverPosition
from trips.model import Trip, TripState

MIDTOWN = (-74.00, 40.74, -73.97, 40.78)


def test_estimate_grows_with_area_and_resolution() -> None:
    small = gj.estimate_cells(MIDTOWN, 8)
    assert 0 < small < gj.estimate_cells(MIDTOWN, 9) < gj.estimate_cells((-75, 40, -73, 42), 9)
    # one res-7 cell's own bbox holds about one cell
    lat, lng = 40.75, -73.98
    ring = h3.cell_to_boundary(h3.latlng_to_cell(lat, lng, 7))
    lats, lngs = [p[0] for p in ring], [p[1] for p in ring]
    assert 0.5 < gj.estimate_cells((min(lngs), min(lats), max(lngs), max(lats)), 7) < 3


def test_cells_outside_the_bbox_are_left_out() -> None:
    inside = h3.latlng_to_cell(40.76, -73.985, 9)
    outside = h3.latlng_to_cell(40.68, -73.94, 9)
    feats = gj.cell_features([(inside, 3, 1), (outside, 2, 2)], 9, MIDTOWN)
    assert [f["id"] for f in feats] == [inside]
    assert feats[0]["properties"] == {"cell": inside, "resolution": 9, "total": 3,
                                      "available": 1, "ratio": 0.333}
    assert geojson.FeatureCollection(feats).is_valid


def test_aggregating_drivers_counts_available_ones() -> None:
    ds = [DriverPosition("1", 40.76, -73.985, True, "standard", 0.0),
          DriverPosition("2", 40.76, -73.985, False, "standard", 0.0),
          DriverPosition("3", 40.68, -73.94, True, "xl", 0.0)]
    counts = dict((c, (t, a)) for c, t, a in gj.aggregate_drivers(ds, 8))
    assert counts[h3.latlng_to_cell(40.76, -73.985, 8)] == (2, 1)
    assert sum(t for t, _ in counts.values()) == 3


def test_driver_features_take_the_dispatch_state_and_stop_at_the_limit() -> None:
    ds = [DriverPosition(str(i), 40.76, -73.98, i != 1, "standard", 0.0) for i in range(3)]
    feats, truncated = gj.driver_features(ds, {"0": "offered"}.get, limit=5)
    assert [f["properties"]["state"] for f in feats] == ["offered", "unavailable", "available"]
    assert truncated is False
    feats, truncated = gj.driver_features(ds, lambda _: None, limit=2)
    assert len(feats) == 2 and truncated is True


def _trip(id_: str, lat: float, lng: float) -> Trip:
    return Trip(id_, "9", "standard", lat, lng, lat - 0.01, lng, 0.0)


def test_trips_are_kept_when_their_line_touches_the_bbox() -> None:
    crossing = Trip("1", "9", "standard", 40.79, -73.98, 40.73, -73.98, 0.0)  # ends outside
    away = _trip("2", 40.68, -73.94)
    feats, _ = gj.trip_features([crossing, away], MIDTOWN, 10)
    assert [f["id"] for f in feats] == ["1"]
    assert feats[0]["geometry"]["coordinates"] == [[-73.98, 40.79], [-73.98, 40.73]]
    assert gj.trip_features([crossing, away], None, 1) == (feats[:1], True)


def test_record_view_follows_each_offer_to_its_outcome() -> None:
    rec = DispatchRecord("7", 0.0)
    rec.log("search", 1.0, radius_m=1500.0, snapshot=4, candidates=[{"driver_id": "1"}],
            filtered={"class": ["5"]}, filtered_counts={"class": 1, "unavailable": 0},
            excluded=[], rings=2, examined=3)
    rec.log("offered", 1.0, driver_id="1", offer_id="o1", rank=0, eta_s=60.0, distance_m=300.0)
    rec.log("expired", 16.0, driver_id="1", offer_id="o1")
    rec.log("offered", 16.0, driver_id="2", offer_id="o2", rank=1, eta_s=90.0, distance_m=450.0)
    rec.log("accepted", 20.0, driver_id="2", offer_id="o2")
    rec.outcome = "accepted"
    offers = [Offer("o1", "7", "1", 1.0, 16.0, 0, 300.0, 60.0, OfferState.expired),
              Offer("o2", "7", "2", 16.0, 31.0, 1, 450.0, 90.0, OfferState.accepted)]
    trip = Trip("7", "9", "standard", 40.75, -73.98, 40.74, -73.98, 0.0,
                state=TripState.driver_assigned, driver_id="2")
    view = gj.record_view(trip, rec, offers)
    assert [(c["driver_id"], c["outcome"]) for c in view["candidates"]] == [
        ("1", "expired"), ("2", "accepted")]
    assert view["searches"][0]["filtered"] == {"class": ["5"]}
    assert view["outcome"] == "accepted" and len(view["events"]) == 5
    assert view["events"][0]["at"].startswith("1970-01-01T00:00:01")


def test_circle_is_a_closed_valid_polygon_at_the_radius() -> None:
    poly = gj.circle(40.75, -73.98, 1000.0)
    assert poly.is_valid
    ring = poly["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 65
    from geoindex import haversine_m

    assert all(abs(haversine_m(40.75, -73.98, lat, lng) - 1000.0) < 5 for lng, lat in ring)


def test_surge_features_carry_the_multiplier_as_text() -> None:
    from decimal import Decimal

    cell = h3.latlng_to_cell(40.76, -73.985, 7)
    far = h3.latlng_to_cell(34.05, -118.24, 7)
    feats = gj.surge_features({cell: Decimal("1.4"), far: Decimal("2.0"), "junk": Decimal(2)},
                              MIDTOWN)
    assert [(f["id"], f["properties"]["multiplier"]) for f in feats] == [(cell, "1.4")]
    assert geojson.FeatureCollection(feats).is_valid
