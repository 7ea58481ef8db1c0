"""The service area: pickups and dropoffs must lie inside a polygon loaded from GeoJSON.

`read_geojson_area` is the one GeoJSON polygon reader of the project (the simulator's cities use
it too): a FeatureCollection, a Feature or a bare geometry of Polygons and MultiPolygons,
repaired where self-intersecting, unioned, and checked to be WGS84 ``[lng, lat]``.
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Any

import shapely
from shapely import prepare
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

_POLYGON_TYPES = ("Polygon", "MultiPolygon")


# GEOS's prepared geometries build their indexes lazily and are not safe to query from two
# threads at once, and shapely lets go of the GIL while GEOS runs: request threads asking
# whether a pickup is in the service area corrupted the heap of an API process (a malloc
# abort under bench/cluster.py; tests/trips/test_area_threads.py reproduces it). Every query
# of a prepared area goes through these, under one lock for the process (a query takes
# microseconds; a geometry may be shared, as the simulator's city and its service area are).
_PREPARED = threading.Lock()


def contains_xy(geometry: Any, x: Any, y: Any) -> Any:
    """`shapely.contains_xy`, safe from any thread."""
    with _PREPARED:
        return shapely.contains_xy(geometry, x, y)


def intersects_xy(geometry: Any, x: Any, y: Any) -> Any:
    """`shapely.intersects_xy`, safe from any thread."""
    with _PREPARED:
        return shapely.intersects_xy(geometry, x, y)


class AreaError(ValueError):
    """A GeoJSON area file we cannot use; the message names the file and the problem."""


class ServiceArea:
    def __init__(self, geometry: object, name: str = "service area") -> None:
        self.geometry = geometry
        self.name = name
        prepare(self.geometry)  # type: ignore[arg-type]

    @classmethod
    def from_geojson(cls, path: str | Path) -> ServiceArea:
        """Load (and cache: the union of a city's polygons takes a second to build, and every
        app instance in a process asks for the same file)."""
        p = Path(path).resolve()
        return _load(str(p), p.stat().st_mtime_ns)

    def contains(self, lat: float, lng: float) -> bool:
        # contains_xy: the same predicate on the prepared polygon, without building a Point
        # (every quote asks twice).
        return bool(contains_xy(self.geometry, lng, lat))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min_lng, min_lat, max_lng, max_lat)"""
        return tuple(self.geometry.bounds)  # type: ignore[attr-defined,return-value]


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int) -> ServiceArea:
    _doc, geometry = read_geojson_area(Path(path), f"service area file {path}")
    return ServiceArea(geometry, Path(path).stem)


def read_geojson_area(path: Path, label: str) -> tuple[Any, Polygon | MultiPolygon]:
    """The parsed document and the union of its polygons; `label` starts every error message
    (e.g. "city file /x.geojson")."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AreaError(f"{label} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AreaError(f"{label} cannot be read: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AreaError(f"{label} is not GeoJSON (invalid JSON: {exc})") from None
    return doc, polygons_from_geojson(doc, label)


def polygons_from_geojson(doc: Any, label: str) -> Polygon | MultiPolygon:
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        raise AreaError(f"{label} is not GeoJSON (no top-level object with a 'type')")
    kind = doc["type"]
    if kind == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise AreaError(f"{label}: FeatureCollection without a 'features' list")
        geoms = [f.get("geometry") for f in features if isinstance(f, dict)]
    elif kind == "Feature":
        geoms = [doc.get("geometry")]
    else:
        geoms = [doc]
    polys: list[BaseGeometry] = []
    for i, g in enumerate(geoms):
        if not isinstance(g, dict) or g.get("type") not in _POLYGON_TYPES:
            continue
        try:
            shp = shape(g)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise AreaError(f"{label}: geometry #{i} is malformed: {exc}") from None
        if not shp.is_valid:
            shp = shp.buffer(0)  # repairs self-intersections in hand-drawn polygons
        if not shp.is_empty:
            polys.append(shp)
    if not polys:
        raise AreaError(f"{label} has no Polygon or MultiPolygon geometry")
    union = shapely.union_all(polys)
    if isinstance(union, Polygon | MultiPolygon):
        geom: Polygon | MultiPolygon = union
    else:  # a GeometryCollection after a repair: keep its polygonal parts
        parts = [g for g in getattr(union, "geoms", []) if isinstance(g, Polygon | MultiPolygon)]
        merged = shapely.union_all(parts) if parts else None
        if not isinstance(merged, Polygon | MultiPolygon) or merged.is_empty:
            raise AreaError(f"{label} has no usable polygon area")
        geom = merged
    min_lng, min_lat, max_lng, max_lat = geom.bounds
    if not (-90 <= min_lat <= max_lat <= 90 and -180 <= min_lng <= max_lng <= 180):
        raise AreaError(f"{label}: coordinates are not WGS84 [lng, lat] (bounds {geom.bounds})")
    return geom
