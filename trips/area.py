"""The service area: pickups and dropoffs must lie inside a polygon loaded from GeoJSON."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from shapely import Point, prepare
from shapely.geometry import shape
from shapely.ops import unary_union


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

    @classmethod
    def _parse(cls, path: str | Path) -> ServiceArea:
        data = json.loads(Path(path).read_text())
        if data.get("type") == "FeatureCollection":
            geoms = [shape(f["geometry"]) for f in data["features"] if f.get("geometry")]
        elif data.get("type") == "Feature":
            geoms = [shape(data["geometry"])]
        else:
            geoms = [shape(data)]
        polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        if not polys:
            raise ValueError(f"{path}: no polygons in the service area file")
        return cls(unary_union(polys), Path(path).stem)

    def contains(self, lat: float, lng: float) -> bool:
        return bool(self.geometry.contains(Point(lng, lat)))  # type: ignore[attr-defined]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min_lng, min_lat, max_lng, max_lat)"""
        return tuple(self.geometry.bounds)  # type: ignore[attr-defined,return-value]


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int) -> ServiceArea:
    return ServiceArea._parse(path)
