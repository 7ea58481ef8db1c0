"""A city's road network as a directed graph in compressed sparse rows (scipy), reduced to its
largest strongly connected part so that every node reaches every other, with a KD-tree over
its nodes for snapping a position to the nearest one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from shapely.geometry import MultiLineString, Polygon

from .geo import LocalPlane
from .osm import RoadEdges, RoadError, read_osm_roads

MIN_EDGE_S = 1e-3  # scipy's graphs drop zero weights; two nodes at one spot are 1 ms apart


class RoadNetwork:
    """Nodes `lat`, `lng` (WGS84) and directed edges with free-flow seconds and metres.

    `forward` and `reverse` are n x n CSR matrices of edge seconds (reverse is the transpose:
    a shortest-path tree on it, from a target, gives every node's time *to* that target).
    """

    def __init__(self, edges: RoadEdges, name: str = "roads") -> None:
        self.name = name
        seconds = np.maximum(edges.length_m / edges.speed_mps, MIN_EDGE_S)
        n_all = len(edges.lat)
        # Parallel ways between the same two nodes: keep the fastest.
        order = np.lexsort((seconds, edges.dst, edges.src))
        src, dst = edges.src[order], edges.dst[order]
        first = np.ones(len(src), bool)
        first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
        src, dst = src[first], dst[first]
        seconds, length = seconds[order][first], edges.length_m[order][first]
        graph = csr_matrix((seconds, (src, dst)), shape=(n_all, n_all))
        _, label = connected_components(graph, directed=True, connection="strong")
        biggest = np.bincount(label).argmax()
        keep = label == biggest
        renumber = np.full(n_all, -1, np.int64)
        renumber[keep] = np.arange(int(keep.sum()))
        inside = keep[src] & keep[dst]
        self.src = renumber[src[inside]]
        self.dst = renumber[dst[inside]]
        self.seconds = seconds[inside]
        self.length_m = length[inside]
        self.lat = edges.lat[keep]
        self.lng = edges.lng[keep]
        self.node_id = edges.node_id[keep]
        n = self.n_nodes = len(self.lat)
        if n < 2:
            raise RoadError(f"road network {name}: fewer than two connected road nodes")
        self.forward = csr_matrix((self.seconds, (self.src, self.dst)), shape=(n, n))
        self.reverse = self.forward.T.tocsr()
        # Edge lookup by (src, dst) for the metres of a path: sorted keys src * n + dst.
        self._key = self.src * n + self.dst
        by_key = np.argsort(self._key)
        self._key, self._key_m = self._key[by_key], self.length_m[by_key]
        self._key_s = self.seconds[by_key]
        self.plane = LocalPlane(float(np.mean(self.lat)))
        self._tree = cKDTree(self.plane.xy(self.lat, self.lng))

    @property
    def n_edges(self) -> int:
        return len(self.src)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(min_lat, min_lng, max_lat, max_lng)`` of the nodes."""
        return (float(self.lat.min()), float(self.lng.min()), float(self.lat.max()),
                float(self.lng.max()))

    def nearest(self, lat: float, lng: float) -> tuple[int, float]:
        """The nearest node and its distance in metres (in the local plane)."""
        dist, node = self._tree.query(self.plane.point(lat, lng))
        return int(node), float(dist)

    def nearest_many(self, lat: NDArray[np.float64], lng: NDArray[np.float64]
                     ) -> NDArray[np.int64]:
        """The nearest node of each position."""
        _, nodes = self._tree.query(self.plane.xy(lat, lng))
        return np.asarray(nodes, np.int64)

    def hop_lengths(self, path: NDArray[np.int64]) -> tuple[NDArray[np.float64],
                                                            NDArray[np.float64]]:
        """Metres and seconds of each edge along a node path."""
        at = np.searchsorted(self._key, path[:-1] * self.n_nodes + path[1:])
        return self._key_m[at], self._key_s[at]

    def outline(self) -> Polygon:
        """The convex hull of the nodes, as a shapely polygon (x = lng, y = lat)."""
        hull = shapely.convex_hull(shapely.multipoints(np.column_stack([self.lng, self.lat])))
        if not isinstance(hull, Polygon):
            raise RoadError(f"road network {self.name}: its nodes enclose no area")
        return hull

    def lines(self) -> MultiLineString:
        """Every edge as a segment (x = lng, y = lat): for drawing and for tests."""
        return MultiLineString([((self.lng[a], self.lat[a]), (self.lng[b], self.lat[b]))
                                for a, b in zip(self.src.tolist(), self.dst.tolist(),
                                                strict=True)])

    def total_km(self) -> float:
        return float(self.length_m.sum()) / 1000.0


def load_road_network(path: str | os.PathLike[str], name: str | None = None) -> RoadNetwork:
    """Read an OpenStreetMap extract; `name` defaults to the file name without its suffixes
    ("west-oakland" for west-oakland.osm.bz2)."""
    p = Path(path)
    edges = read_osm_roads(p)
    return RoadNetwork(edges, name or p.name.split(".")[0])
