"""Plain value types returned by the index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray


class Neighbor(NamedTuple):
    driver_id: str
    distance_m: float
    lat: float
    lng: float
    vehicle_class: str
    available: bool
    ts: float


class DriverPosition(NamedTuple):
    driver_id: str
    lat: float
    lng: float
    available: bool
    vehicle_class: str
    ts: float


class CellCount(NamedTuple):
    """Drivers in one cell: H3 cell id (hex) or quadtree key `q<level>/<x>/<y>`."""

    cell: str
    total: int
    available: int


class RejectedRow(NamedTuple):
    row: int
    driver_id: object
    field: str
    reason: str


@dataclass(frozen=True)
class UpsertResult:
    applied: int
    rejected: list[RejectedRow]

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)


FILTER_REASONS = ("class", "unavailable", "stale", "too_far")


@dataclass
class NearestExplain:
    """Why each driver near a query was or was not returned (for the map and dispatch records).

    ``rings_searched`` counts H3 rings reached, or quadtree nodes visited for that backend.
    ``outranked`` lists drivers that passed every filter but had k closer ones.
    """

    neighbors: list[Neighbor]
    backend: str
    rings_searched: int
    cells_searched: list[str]
    candidates_examined: int
    filtered_counts: dict[str, int] = field(default_factory=dict)
    filtered_ids: dict[str, list[str]] = field(default_factory=dict)
    outranked: list[str] = field(default_factory=list)


class NearestArrays:
    """Columnar answer of ``Snapshot.nearest_many_arrays``: row i holds query i's neighbours,
    nearest first (distance, then id), in its first ``count[i]`` columns; the rest of the row is
    padding (``index`` -1, ``distance_m`` inf, ``lat``/``lng``/``ts`` NaN).

    ``index`` is a driver's position in the index's id table: ``driver_id(j)`` names it, and it
    stays the same driver for the life of the index.
    """

    __slots__ = ("_classes", "_f", "_i", "_ids", "available", "class_code", "count",
                 "distance_m", "index", "lat", "lng", "ts")

    def __init__(self, rows_f: NDArray[np.float64], rows_i: NDArray[np.int64],
                 count: NDArray[np.int64], ids: Sequence[str], classes: Sequence[str]) -> None:
        """``rows_f`` (n, k, 4): distance, lat, lng, ts; ``rows_i`` (n, k, 3): index, class
        code, available. The public columns are views of them."""
        self._f = rows_f
        self._i = rows_i
        self.distance_m = rows_f[:, :, 0]
        self.lat = rows_f[:, :, 1]
        self.lng = rows_f[:, :, 2]
        self.ts = rows_f[:, :, 3]
        self.index = rows_i[:, :, 0]
        self.class_code = rows_i[:, :, 1]
        self.available = rows_i[:, :, 2]
        self.count = count
        self._ids = ids
        self._classes = classes

    def __len__(self) -> int:
        return int(self.count.shape[0])

    def __repr__(self) -> str:
        return f"NearestArrays(queries={len(self)}, k={self.index.shape[1]})"

    def driver_id(self, index: int) -> str:
        return self._ids[index]

    def driver_ids(self, i: int) -> list[str]:
        """Query i's neighbours' ids, nearest first."""
        ids = self._ids
        return [ids[j] for j in self.index[i, : self.count[i]].tolist()]

    def vehicle_class(self, code: int) -> str:
        return self._classes[code]

    def neighbors(self) -> list[list[Neighbor]]:
        """One list of ``Neighbor`` per query (what ``nearest_many`` returns)."""
        live = self.index >= 0  # row-major: each query's neighbours are contiguous
        ids, names = self._ids, self._classes
        d, la, ln, ts = self._f[live].T.tolist()
        slots, cls, av = self._i[live].T.tolist()
        rows = list(map(tuple.__new__, repeat(Neighbor), zip(
            [ids[j] for j in slots], d, la, ln, [names[c] for c in cls], [a == 1 for a in av],
            ts, strict=True)))
        ends = np.cumsum(self.count).tolist()
        return [rows[a:b] for a, b in zip([0, *ends], ends, strict=False)]
