"""Plain value types returned by the index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


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
