"""GeoJSON feature builders for the index debugging map. Plain functions over the index's value
types, trips and dispatch records: no Flask here, so they are tested without an app.

Coordinates are GeoJSON order, `[lng, lat]`; a bbox is `(min_lng, min_lat, max_lng, max_lat)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import geojson
import h3
from shapely import LineString, box
from shapely.geometry import mapping

from geoindex import DriverPosition, NearestExplain
from ridehail.kernel.formats import iso
from ridehail.kernel.geo import EARTH_RADIUS_M
from trips.model import Trip

from .model import DispatchRecord, Offer

BBox = tuple[float, float, float, float]
WORLD: BBox = (-180.0, -90.0, 180.0, 90.0)
# Outcomes that close an offer, as logged in dispatch records.
OFFER_OUTCOMES = ("accepted", "rejected", "expired", "withdrawn")


def collection(features: list[geojson.Feature], **meta: Any) -> geojson.FeatureCollection:
    """A FeatureCollection with a `meta` foreign member (counts, version, truncation)."""
    return geojson.FeatureCollection(features, meta={"count": len(features), **meta})


def estimate_cells(bbox: BBox, resolution: int) -> float:
    """Roughly how many H3 cells of `resolution` cover `bbox` (area / mean cell area): enough
    to refuse a request before building a huge answer."""
    min_lng, min_lat, max_lng, max_lat = bbox
    mid = math.radians((min_lat + max_lat) / 2)
    width_km = (max_lng - min_lng) * 111.32 * max(math.cos(mid), 0.01)
    height_km = (max_lat - min_lat) * 110.57
    return width_km * height_km / float(h3.average_hexagon_area(resolution, unit="km^2"))


def _in_bbox(lat: float, lng: float, bbox: BBox, margin_deg: float = 0.0) -> bool:
    min_lng, min_lat, max_lng, max_lat = bbox
    return (min_lat - margin_deg <= lat <= max_lat + margin_deg
            and min_lng - margin_deg <= lng <= max_lng + margin_deg)


def _cell_polygon(cell: str) -> geojson.Polygon:
    ring = [[round(lng, 6), round(lat, 6)] for lat, lng in h3.cell_to_boundary(cell)]
    ring.append(ring[0])
    return geojson.Polygon([ring])


def _cells_near(cells: Iterable[str], resolution: int, bbox: BBox) -> Iterable[str]:
    # A cell whose centre lies just outside the bbox still shows at the edge of the view.
    margin = float(h3.average_hexagon_edge_length(resolution, unit="km")) / 111.0
    for cell in cells:
        lat, lng = h3.cell_to_latlng(cell)
        if _in_bbox(lat, lng, bbox, margin):
            yield cell


def aggregate_drivers(drivers: Iterable[DriverPosition],
                      resolution: int) -> list[tuple[str, int, int]]:
    """(cell, total, available) per H3 cell: for a quadtree index, or resolutions finer than
    the index's, where the snapshot cannot count by H3 cell itself."""
    agg: dict[str, list[int]] = {}
    for d in drivers:
        slot = agg.setdefault(h3.latlng_to_cell(d.lat, d.lng, resolution), [0, 0])
        slot[0] += 1
        slot[1] += int(d.available)
    return [(c, t, a) for c, (t, a) in sorted(agg.items())]


def cell_features(counts: Iterable[tuple[str, int, int]], resolution: int,
                  bbox: BBox) -> list[geojson.Feature]:
    by_cell = {c: (t, a) for c, t, a in counts}
    out = []
    for cell in _cells_near(by_cell, resolution, bbox):
        total, available = by_cell[cell]
        out.append(geojson.Feature(id=cell, geometry=_cell_polygon(cell), properties={
            "cell": cell, "resolution": resolution, "total": total, "available": available,
            "ratio": round(available / total, 3) if total else 0.0,
        }))
    return out


def driver_features(drivers: Iterable[DriverPosition], status_of: Callable[[str], str | None],
                    limit: int) -> tuple[list[geojson.Feature], bool]:
    """Drivers as points with the dispatcher's state; (features, truncated)."""
    out: list[geojson.Feature] = []
    for d in drivers:
        if len(out) >= limit:
            return out, True
        # The directory knows offered/en_route/on_trip; the index alone only knows available.
        state = status_of(d.driver_id) or ("available" if d.available else "unavailable")
        out.append(geojson.Feature(
            id=d.driver_id, geometry=geojson.Point((round(d.lng, 6), round(d.lat, 6))),
            properties={"driver_id": d.driver_id, "state": state, "available": d.available,
                        "vehicle_class": d.vehicle_class, "ts": iso(d.ts)}))
    return out, False


def trip_features(trips: Iterable[Trip], bbox: BBox | None,
                  limit: int) -> tuple[list[geojson.Feature], bool]:
    """Open trips as pickup -> dropoff lines, kept when the line touches the bbox."""
    area = box(*bbox) if bbox is not None else None
    out: list[geojson.Feature] = []
    for t in trips:
        line = LineString([(t.pickup_lng, t.pickup_lat), (t.dropoff_lng, t.dropoff_lat)])
        if area is not None and not area.intersects(line):
            continue
        if len(out) >= limit:
            return out, True
        out.append(geojson.Feature(
            id=t.id,
            geometry=geojson.LineString([(t.pickup_lng, t.pickup_lat),
                                         (t.dropoff_lng, t.dropoff_lat)]),
            properties={"trip_id": t.id, "state": t.state.value, "driver_id": t.driver_id,
                        "rider_id": t.rider_id, "vehicle_class": t.vehicle_class,
                        "requested_at": iso(t.requested_at), "surge": t.surge}))
    return out, False


def surge_features(multipliers: Mapping[str, Decimal], bbox: BBox) -> list[geojson.Feature]:
    out = []
    for cell in multipliers:
        if not h3.is_valid_cell(cell):
            continue
        res = h3.get_resolution(cell)
        if not any(True for _ in _cells_near([cell], res, bbox)):
            continue
        out.append(geojson.Feature(id=cell, geometry=_cell_polygon(cell), properties={
            "cell": cell, "resolution": res, "multiplier": str(multipliers[cell])}))
    return out


def circle(lat: float, lng: float, radius_m: float, points: int = 64) -> geojson.Polygon:
    """A geodesic circle as a polygon (the search radius, drawn)."""
    ring = []
    d = radius_m / EARTH_RADIUS_M
    la1, ln1 = math.radians(lat), math.radians(lng)
    for i in range(points):
        b = 2 * math.pi * i / points
        la2 = math.asin(math.sin(la1) * math.cos(d) + math.cos(la1) * math.sin(d) * math.cos(b))
        ln2 = ln1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(la1),
                               math.cos(d) - math.sin(la1) * math.sin(la2))
        lng2 = (math.degrees(ln2) + 540.0) % 360.0 - 180.0
        ring.append([round(lng2, 6), round(math.degrees(la2), 6)])
    ring.append(ring[0])
    return geojson.Polygon([ring])


def nearest_features(explain: NearestExplain, lat: float, lng: float, radius_m: float,
                     position_of: Callable[[str], DriverPosition | None],
                     max_filtered: int = 200) -> list[geojson.Feature]:
    """The query point, its radius, the cells searched (H3 only), the k found and the drivers
    seen but filtered out, each with the reason."""
    out = [
        geojson.Feature(geometry=geojson.Point((lng, lat)), properties={"role": "query"}),
        geojson.Feature(geometry=circle(lat, lng, radius_m),
                        properties={"role": "radius", "radius_m": radius_m}),
    ]
    if explain.backend == "h3":
        for cell in explain.cells_searched:
            out.append(geojson.Feature(geometry=_cell_polygon(cell),
                                       properties={"role": "searched_cell", "cell": cell}))
    for rank, n in enumerate(explain.neighbors):
        out.append(geojson.Feature(
            id=n.driver_id, geometry=geojson.Point((n.lng, n.lat)),
            properties={"role": "neighbor", "rank": rank, "driver_id": n.driver_id,
                        "distance_m": round(n.distance_m, 1), "vehicle_class": n.vehicle_class}))
    drawn = 0
    for reason, ids in explain.filtered_ids.items():
        for did in ids:
            pos = position_of(did) if drawn < max_filtered else None
            if pos is None:
                continue
            drawn += 1
            out.append(geojson.Feature(
                id=did, geometry=geojson.Point((pos.lng, pos.lat)),
                properties={"role": "filtered", "reason": reason, "driver_id": did,
                            "vehicle_class": pos.vehicle_class, "available": pos.available}))
    return out


def explain_summary(explain: NearestExplain) -> dict[str, Any]:
    return {
        "backend": explain.backend,
        "rings_searched": explain.rings_searched,
        "cells_searched": len(explain.cells_searched),
        "candidates_examined": explain.candidates_examined,
        "found": [{"driver_id": n.driver_id, "distance_m": round(n.distance_m, 1)}
                  for n in explain.neighbors],
        "filtered_counts": dict(explain.filtered_counts),
        "outranked": len(explain.outranked),
    }


def area_feature(geometry: Any, name: str, tolerance_deg: float = 0.0005) -> geojson.Feature:
    """The service area, simplified (about 50 m) so the page stays light."""
    simple = geometry.simplify(tolerance_deg, preserve_topology=True)
    return geojson.Feature(geometry=geojson.loads(geojson.dumps(mapping(simple))),
                           properties={"role": "service_area", "name": name})


def record_view(trip: Trip, record: DispatchRecord | None,
                offers: list[Offer]) -> dict[str, Any]:
    """Why this trip got the driver it got: the searches (with drivers filtered out and why),
    the candidates offered in order with each outcome, and the raw event log."""
    events = list(record.events) if record is not None else []
    offer_by_id = {o.id: o for o in offers}
    closed: dict[str, str] = {}
    for e in events:
        if e.get("kind") in OFFER_OUTCOMES and e.get("offer_id"):
            closed[e["offer_id"]] = e["kind"]
    candidates = []
    for e in events:
        if e.get("kind") != "offered":
            continue
        offer = offer_by_id.get(e.get("offer_id", ""))
        outcome = closed.get(e.get("offer_id", ""))
        if outcome is None and offer is not None:
            outcome = offer.state.value  # e.g. still pending
        candidates.append({
            "driver_id": e.get("driver_id"), "offer_id": e.get("offer_id"),
            "rank": e.get("rank"), "eta_s": e.get("eta_s"), "distance_m": e.get("distance_m"),
            "offered_at": iso(e.get("at")), "outcome": outcome or "pending",
        })
    searches = [{
        "at": iso(e.get("at")), "radius_m": e.get("radius_m"), "snapshot": e.get("snapshot"),
        "rings": e.get("rings"), "examined": e.get("examined"),
        "candidates": e.get("candidates", []), "filtered": e.get("filtered", {}),
        "filtered_counts": e.get("filtered_counts", {}), "excluded": e.get("excluded", []),
    } for e in events if e.get("kind") == "search"]
    skipped = [{"driver_id": e.get("driver_id"), "reason": e.get("reason"), "at": iso(e.get("at"))}
               for e in events if e.get("kind") == "skipped"]
    return {
        "trip": {
            "id": trip.id, "state": trip.state.value, "driver_id": trip.driver_id,
            "rider_id": trip.rider_id, "vehicle_class": trip.vehicle_class,
            "pickup": {"lat": trip.pickup_lat, "lng": trip.pickup_lng},
            "dropoff": {"lat": trip.dropoff_lat, "lng": trip.dropoff_lng},
            "requested_at": iso(trip.requested_at),
        },
        "outcome": record.outcome if record is not None else None,
        "searches": searches,
        "candidates": candidates,
        "skipped": skipped,
        "events": [{**e, "at": iso(e.get("at"))} for e in events],
    }
