"""Available drivers per H3 cell, kept by the writer at publish time (surge's supply).

Only the drivers a publish touches are recounted: an available driver's cell is recomputed
when its position changed since it was last placed, and the counts move from its old cell to
its new one. A busy driver moves every tick but is not counted, so its cell is left alone.
The cell is H3's ``latlng_to_cell`` at the surge resolution, as surge places a request, never
the parent of a finer cell (H3 is not exactly nested: about 5% of points differ).
A snapshot holds its own counts, so readers never see a half-applied publish.

A driver who moved but is still inside the circle inscribed in their cell is still in it, so
``latlng_to_cell`` (a call per driver) is paid only for those who left the circle: about a
tenth of a hexagon's area lies outside it. Each cell's circle is measured once, on a plane
tangent at its centre, and kept 2% inside the boundary (at these sizes the plane is off by
millimetres).
"""

from __future__ import annotations

import math

import h3
import numpy as np
from h3.api import basic_int as h3i
from numpy.typing import NDArray

from .geo import EARTH_RADIUS_M


class CellSupply:
    """Per-slot cell codes and per-cell available counts of one index writer."""

    def __init__(self, resolution: int) -> None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) \
                or not 0 <= resolution <= 15:
            raise ValueError(f"resolution: H3 resolutions are 0..15, got {resolution!r}")
        self.resolution = resolution
        self._code_of: dict[int, int] = {}
        self._cells: list[str] = []
        self._counts = np.zeros(0, np.int64)
        self._cell = np.zeros(0, np.int32)  # per slot: code of its cell, -1 not placed yet
        self._at = np.zeros((0, 2))  # per slot: the position its cell was computed for
        self._counted = np.zeros(0, np.int32)  # per slot: the cell it is counted in, or -1
        # Per cell code: its centre (degrees), cos(centre latitude), and the radius (metres)
        # of the circle inside it (0: no shortcut for this cell); grown by doubling.
        self._centre = np.zeros((0, 2))
        self._cos = np.zeros(0)
        self._inner_m = np.zeros(0)

    def _grow(self, n: int) -> None:
        old = self._cell.shape[0]
        if n <= old:
            return
        cap = max(n, 2 * old, 1024)
        for name, fill in (("_cell", -1), ("_counted", -1)):
            arr = np.full(cap, fill, np.int32)
            arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        at = np.full((cap, 2), np.nan)
        at[:old] = self._at
        self._at = at

    def _codes(self, cells: NDArray[np.int64]) -> NDArray[np.int32]:
        uniq, inv = np.unique(cells, return_inverse=True)
        code_of = self._code_of
        codes = []
        for c in uniq.tolist():
            code = code_of.get(c)
            if code is None:
                code = code_of[c] = len(self._cells)
                self._cells.append(h3.int_to_str(c))
                self._circle(c)
            codes.append(code)
        return np.asarray(codes, np.int32)[inv.reshape(-1)]

    def _circle(self, cell: int) -> None:
        """Measure a new cell's inscribed circle: the centre's distance to the nearest edge.
        Where the flat plane is not good to 0.5% across the circle (a cell too big or too near
        a pole: the scale of longitude changes across it) the cell gets no circle."""
        code = len(self._cells) - 1
        if code >= self._cos.shape[0]:
            cap = max(64, 2 * code)
            self._centre = np.resize(self._centre, (cap, 2))
            self._cos = np.resize(self._cos, cap)
            self._inner_m = np.resize(self._inner_m, cap)
        lat0, lng0 = h3i.cell_to_latlng(cell)
        cos0 = math.cos(math.radians(lat0))
        pts = [_plane(lat, lng, lat0, lng0, cos0) for lat, lng in h3i.cell_to_boundary(cell)]
        inner = min(_to_segment(a, b) for a, b in zip(pts, pts[1:] + pts[:1], strict=True))
        flat = abs(lat0) < 85 and math.tan(math.radians(abs(lat0))) * inner / EARTH_RADIUS_M < 0.005
        self._centre[code] = lat0, lng0
        self._cos[code] = cos0
        self._inner_m[code] = 0.98 * inner if flat else 0.0

    def _still_inside(self, slots: NDArray[np.int64], lat: NDArray[np.float64],
                      lng: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Per slot: is its new position inside its cell's inscribed circle (so in the cell)?"""
        code = self._cell[slots]
        known = code >= 0
        c = np.where(known, code, 0)
        if not self._cells:
            return np.zeros(slots.shape[0], np.bool_)
        dy = (lat[slots] - self._centre[c, 0]) * _M_PER_DEG
        dx = (lng[slots] - self._centre[c, 1]) * _M_PER_DEG * self._cos[c]
        return known & (dx * dx + dy * dy < self._inner_m[c] ** 2)

    def update(self, slots: NDArray[np.int64], n_slots: int, lat: NDArray[np.float64],
               lng: NDArray[np.float64], alive: NDArray[np.uint8],
               avail: NDArray[np.uint8]) -> None:
        """Recount the given (dirty) slots from the writer's columns."""
        self._grow(n_slots)
        # Only an available driver is counted, so only its cell is needed: a busy driver's cell
        # waits until it is available again (its `_at` is then stale, so it is recomputed).
        counts_it = (alive[slots] != 0) & (avail[slots] != 0)
        counted = slots[counts_it]
        at = self._at[counted]
        moved = counted[(at[:, 0] != lat[counted]) | (at[:, 1] != lng[counted])]
        if moved.shape[0]:
            left = moved[~self._still_inside(moved, lat, lng)]
            if left.shape[0]:
                res, f = self.resolution, h3i.latlng_to_cell
                cells = np.fromiter((f(a, b, res) for a, b in zip(
                    lat[left].tolist(), lng[left].tolist(), strict=True)), np.int64,
                    left.shape[0])
                self._cell[left] = self._codes(cells)
            self._at[moved, 0] = lat[moved]
            self._at[moved, 1] = lng[moved]
        new = np.full(slots.shape[0], -1, np.int32)
        new[counts_it] = self._cell[counted]
        old = self._counted[slots]
        size = len(self._cells)
        counts = np.zeros(size, np.int64)
        counts[: self._counts.shape[0]] = self._counts
        counts -= np.bincount(old[old >= 0], minlength=size)
        counts += np.bincount(new[new >= 0], minlength=size)
        self._counted[slots] = new
        self._counts = counts

    def view(self) -> tuple[int, list[str], NDArray[np.int64]]:
        """What a snapshot keeps: the resolution, the cell ids (append-only) and the counts
        (never changed in place: `update` makes a new array)."""
        return self.resolution, self._cells, self._counts


_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0  # metres per degree of a great circle


def _plane(lat: float, lng: float, lat0: float, lng0: float, cos0: float
           ) -> tuple[float, float]:
    """(x, y) metres of a point on the plane tangent at (lat0, lng0), equirectangular."""
    return (lng - lng0) * _M_PER_DEG * cos0, (lat - lat0) * _M_PER_DEG


def _to_segment(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The distance from the origin to the segment ab."""
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    t = min(1.0, max(0.0, -(ax * dx + ay * dy) / (dx * dx + dy * dy or 1.0)))
    return math.hypot(ax + t * dx, ay + t * dy)
