"""Service areas for the simulator: a city is the union of the polygons in a GeoJSON file.

`load_city(path)` reads a FeatureCollection (or a single Feature or bare geometry) of Polygons and
MultiPolygons, e.g. ``data/nyc/boroughs.geojson``, into a `City`: its name, the
(multi)polygon union, prepared so that point tests are fast, its bounds, its area and a uniform
point sampler. GeoJSON gives positions as ``[lng, lat]``; every public method here takes and returns
``(lat, lng)`` in WGS84, like the rest of the project.

Bad input raises `CityError` (a `ValueError`) whose message names the file and the problem.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from trips.area import AreaError, intersects_xy, read_geojson_area

__all__ = [
    "EARTH_RADIUS_KM",
    "City",
    "CityError",
    "data_dir",
    "default_city_path",
    "load_city",
]

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG), the one h3 uses too

_GENERIC_STEMS = frozenset(
    {"boroughs", "neighbourhoods", "neighborhoods", "city", "districts", "zones", "service_area"}
)


class CityError(ValueError):
    """A service-area file that cannot be used: missing, not GeoJSON, or without polygons."""


def data_dir() -> Path:
    """The real-data folder: ``$RIDEHAIL_DATA_DIR``, else the repository's ``data/``.

    Read from the environment here (not from `ridehail.settings`, which the simulator may not
    import); the wiring's `Settings.data_dir` documents and validates the same variable.
    """
    env = os.environ.get("RIDEHAIL_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "data"


def default_city_path() -> Path:
    """The default service area: the five NYC boroughs."""
    return data_dir() / "nyc" / "boroughs.geojson"


@dataclass(frozen=True, eq=False)
class City:
    """A service area; `geometry` is a shapely (Multi)Polygon with x = lng, y = lat."""

    name: str
    geometry: Polygon | MultiPolygon
    _area_km2: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        shapely.prepare(self.geometry)
        object.__setattr__(self, "_area_km2", _area_km2(self.geometry))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(min_lat, min_lng, max_lat, max_lng)``."""
        min_lng, min_lat, max_lng, max_lat = self.geometry.bounds
        return (min_lat, min_lng, max_lat, max_lng)

    @property
    def area_km2(self) -> float:
        return self._area_km2

    @property
    def centre(self) -> tuple[float, float]:
        """A point guaranteed inside the area, ``(lat, lng)``."""
        p = self.geometry.representative_point()
        return (p.y, p.x)

    def contains(self, lat: float, lng: float) -> bool:
        """Whether the point is inside (or on the boundary of) the service area."""
        if not (math.isfinite(lat) and math.isfinite(lng)):
            return False
        return bool(intersects_xy(self.geometry, lng, lat))

    def contains_many(self, lats: Any, lngs: Any) -> np.ndarray:
        """Vectorised `contains`: a boolean array, False for NaN coordinates."""
        lat = np.asarray(lats, dtype=float)
        lng = np.asarray(lngs, dtype=float)
        ok = np.isfinite(lat) & np.isfinite(lng)
        out = np.zeros(np.broadcast(lat, lng).shape, dtype=bool)
        if ok.any():
            out[ok] = intersects_xy(self.geometry, lng[ok], lat[ok])
        return out

    def sample_points(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` points uniform by area inside the city, as an ``(n, 2)`` array of ``(lat, lng)``.

        Rejection sampling in the bounding box, drawing longitude and sin(latitude) uniformly,
        which is uniform by area on the sphere (not just in degrees).
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        min_lat, min_lng, max_lat, max_lng = self.bounds
        s_lo, s_hi = math.sin(math.radians(min_lat)), math.sin(math.radians(max_lat))
        out = np.empty((n, 2))
        filled = 0
        while filled < n:
            # Oversample by the bbox/area ratio so that a couple of rounds suffice.
            want = max(64, int((n - filled) * 1.3 / max(self._fill_ratio(), 1e-3)))
            lat = np.degrees(np.arcsin(rng.uniform(s_lo, s_hi, want)))
            lng = rng.uniform(min_lng, max_lng, want)
            keep = self.contains_many(lat, lng)
            k = min(int(keep.sum()), n - filled)
            out[filled : filled + k, 0] = lat[keep][:k]
            out[filled : filled + k, 1] = lng[keep][:k]
            filled += k
        return out

    def outline(self, tolerance_m: float = 50.0) -> list[list[tuple[float, float]]]:
        """The exterior rings of the area, simplified, as lists of ``(lat, lng)`` (for drawing)."""
        tol = tolerance_m / 111_320.0
        simple = self.geometry.simplify(tol, preserve_topology=True)
        polys = list(simple.geoms) if isinstance(simple, MultiPolygon) else [simple]
        rings: list[list[tuple[float, float]]] = []
        for poly in polys:
            if isinstance(poly, Polygon) and not poly.is_empty:
                rings.append([(y, x) for x, y in poly.exterior.coords])
        return rings

    def _fill_ratio(self) -> float:
        min_lng, min_lat, max_lng, max_lat = self.geometry.bounds
        box_area = (max_lng - min_lng) * (max_lat - min_lat)
        return float(self.geometry.area / box_area) if box_area > 0 else 1.0


def load_city(path: str | os.PathLike[str], name: str | None = None) -> City:
    """Load a service area from a GeoJSON file; `name` defaults to the file's own or its stem."""
    p = Path(path)
    try:
        doc, geometry = read_geojson_area(p, f"city file {p}")
    except AreaError as exc:
        raise CityError(str(exc)) from None
    if name is None:
        doc_name = doc.get("name") if isinstance(doc, dict) else None
        if isinstance(doc_name, str) and doc_name:
            name = doc_name
        elif p.stem.lower() in _GENERIC_STEMS and p.parent.name:
            name = p.parent.name  # ".../nyc/boroughs.geojson" is "nyc"
        else:
            name = p.stem
    return City(name=name, geometry=geometry)


def _area_km2(geometry: BaseGeometry) -> float:
    # Lambert cylindrical equal-area projection: x = R*lng, y = R*sin(lat) preserves area exactly.
    def project(coords: np.ndarray) -> np.ndarray:
        lng = np.radians(coords[:, 0])
        lat = np.radians(coords[:, 1])
        return np.column_stack([EARTH_RADIUS_KM * lng, EARTH_RADIUS_KM * np.sin(lat)])

    return float(shapely.transform(geometry, project).area)
