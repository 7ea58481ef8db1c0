"""The partition map for a world of cities: an H3 parent cell (resolution 4 by default, about
1,770 km² and a 26 km edge) belongs to one shard; a shard is a group of API processes that share
one location stream and one index (one city, or part of a big one). See docs/scaling.md.

- `shard_of(lat, lng)`: the owner of a point: where its location updates and its trip requests
  are routed.
- `shards_for_query(lat, lng, radius_m)`: every shard whose cells a query disk touches. Usually
  one; near a partition edge two or three, and the router scatters the query to each and merges
  the nearest answers (gather).

Cells with no owner belong to nobody: a point there is outside every service area.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h3

from ridehail.kernel.geo import EARTH_RADIUS_M


@dataclass
class PartitionMap:
    resolution: int = 4
    owners: dict[str, str] = field(default_factory=dict)  # parent cell -> shard

    @classmethod
    def from_areas(cls, areas: Mapping[str, Any], resolution: int = 4) -> PartitionMap:
        """Shard name -> a GeoJSON (Multi)Polygon geometry: each shard owns the parent cells
        whose centre is inside its area, plus those its boundary crosses (no gaps at edges).
        The first shard listed wins a cell two areas share."""
        pm = cls(resolution)
        for shard, geometry in areas.items():
            shape = h3.geo_to_h3shape(geometry)
            cells = set(h3.h3shape_to_cells(shape, resolution))
            for poly in _outer_rings(geometry):
                cells.update(h3.latlng_to_cell(lat, lng, resolution) for lng, lat in poly)
            for cell in cells:
                pm.owners.setdefault(cell, shard)
        return pm

    def assign(self, cells: Iterable[str], shard: str) -> None:
        for cell in cells:
            if h3.get_resolution(cell) != self.resolution:
                raise ValueError(f"cell {cell}: resolution must be {self.resolution}")
            self.owners[cell] = shard

    def cell_of(self, lat: float, lng: float) -> str:
        return str(h3.latlng_to_cell(lat, lng, self.resolution))

    def shard_of(self, lat: float, lng: float) -> str | None:
        return self.owners.get(self.cell_of(lat, lng))

    def shards(self) -> set[str]:
        return set(self.owners.values())

    def cells_for_query(self, lat: float, lng: float, radius_m: float) -> set[str]:
        """The parent cells a disk of `radius_m` around the point intersects: the centre's
        cell, and every nearby cell whose boundary comes within the radius."""
        if radius_m < 0 or not math.isfinite(radius_m):
            raise ValueError("radius_m: must be finite and >= 0")
        centre = self.cell_of(lat, lng)
        # Enough rings to reach any cell within the radius (edges vary ~2x across the globe).
        edge = h3.average_hexagon_edge_length(self.resolution, "m")
        k = 1 + math.ceil(radius_m / (0.5 * edge))
        out = {centre}
        for cell in h3.grid_disk(centre, k):
            if cell != centre and _distance_to_cell_m(lat, lng, cell) <= radius_m:
                out.add(cell)
        return out

    def shards_for_query(self, lat: float, lng: float, radius_m: float) -> set[str]:
        """Shards to scatter a nearby/candidate query to (the owner first in practice)."""
        return {s for c in self.cells_for_query(lat, lng, radius_m)
                if (s := self.owners.get(c)) is not None}


def _outer_rings(geometry: Mapping[str, Any]) -> list[list[tuple[float, float]]]:
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"][0]]
    if geometry["type"] == "MultiPolygon":
        return [poly[0] for poly in geometry["coordinates"]]
    raise ValueError(f"geometry: expected a Polygon or MultiPolygon, got {geometry['type']}")


def _distance_to_cell_m(lat: float, lng: float, cell: str) -> float:
    """Distance from a point to a cell's boundary (0 inside), in a local equirectangular
    projection: exact enough at tens of kilometres, which is all a query radius spans."""
    if h3.latlng_to_cell(lat, lng, h3.get_resolution(cell)) == cell:
        return 0.0
    kx = math.radians(1) * EARTH_RADIUS_M * math.cos(math.radians(lat))
    ky = math.radians(1) * EARTH_RADIUS_M
    pts = [((b_lng - lng) * kx, (b_lat - lat) * ky) for b_lat, b_lng in h3.cell_to_boundary(cell)]
    best = math.inf
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True):
        dx, dy = x2 - x1, y2 - y1
        t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, -(x1 * dx + y1 * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(x1 + t * dx, y1 + t * dy))
    return best
