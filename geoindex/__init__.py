"""Live spatial index of drivers: k-nearest queries on immutable, structurally shared snapshots.

>>> from geoindex import GeoIndex
>>> idx = GeoIndex(backend="quadtree", ttl_s=30.0)
"""

from .geo import EARTH_RADIUS_M, haversine_m
from .index import GeoIndex
from .model import (
    CellCount,
    DriverPosition,
    NearestArrays,
    NearestExplain,
    Neighbor,
    RejectedRow,
    UpsertResult,
)
from .snapshot import Snapshot

__all__ = [
    "EARTH_RADIUS_M",
    "CellCount",
    "DriverPosition",
    "GeoIndex",
    "NearestArrays",
    "NearestExplain",
    "Neighbor",
    "RejectedRow",
    "Snapshot",
    "UpsertResult",
    "haversine_m",
]
