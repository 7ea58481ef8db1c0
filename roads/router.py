"""Routes on a road network: seconds, metres and the path a car drives, and the two questions
of dispatch's ETA model (`dispatch.eta.EtaModel`): `pickup_etas` (many drivers to one pickup)
and `travel` (one drive's seconds and metres, for the upfront fare), so a `Router` is the
engine's ETA model in a city with a road map.

A position snaps to the nearest road node; the stretch between the position and its node is
driven in a straight line at `ACCESS_SPEED_MPS` (a car park, a driveway). Shortest paths by
free-flow time are Dijkstra trees on the reversed graph, one per target node, cached (LRU):
the candidates dispatch ranks for one pickup all read the same tree, and so does the driver
who then drives there. A position farther than `max_snap_m` from any road is off the network:
`route` raises `OffNetwork`, the ETA questions ask the `fallback` model (when one is given).
Speeds are free-flow: the departure time (`when`) does not change a route.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.sparse.csgraph import dijkstra

from ridehail.kernel.geo import haversine_m, haversine_many

from .network import RoadNetwork
from .osm import RoadError

ACCESS_SPEED_MPS = 15 / 3.6  # from a position to its road node (OSRM's service-road speed)
DEFAULT_MAX_SNAP_M = 500.0
TREE_CACHE_BYTES = 64 * 2**20
ROUTE_CACHE = 1024


class OffNetwork(RoadError):
    """A position too far from every road of the network to be routed."""


class EtaFallback(Protocol):
    """What answers for positions off the network: dispatch's straight-line model (the same
    questions as `dispatch.eta.EtaModel`, which this package may not import)."""

    def travel(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float,
               when: float) -> tuple[float, float]: ...

    def pickup_etas(self, from_lats: Sequence[float], from_lngs: Sequence[float],
                    to_lat: float, to_lng: float, when: float) -> list[float]: ...


@dataclass(frozen=True)
class Route:
    """A drive from one position to another. `lat`, `lng` are the path's vertices (the two
    positions at its ends, road nodes between them); `elapsed_s` and `along_m` the time and
    distance from the start at each vertex (so `elapsed_s[-1] == seconds`)."""

    seconds: float
    metres: float
    lat: NDArray[np.float64]
    lng: NDArray[np.float64]
    elapsed_s: NDArray[np.float64]
    along_m: NDArray[np.float64]
    _at: tuple[list[float], list[float], list[float]] = field(init=False, repr=False,
                                                                compare=False)

    def __post_init__(self) -> None:
        # Plain lists: the simulator asks every moving car's position each tick, and bisect
        # over a list costs a tenth of np.interp's call on arrays this small.
        object.__setattr__(self, "_at", (self.elapsed_s.tolist(), self.lat.tolist(),
                                         self.lng.tolist()))

    def position_at(self, t_s: float) -> tuple[float, float]:
        """Where the car is `t_s` seconds after leaving (clamped to the ends)."""
        ts, lat, lng = self._at
        k = bisect.bisect_right(ts, t_s)
        if k == 0:
            return lat[0], lng[0]
        if k == len(ts):
            return lat[-1], lng[-1]
        f = (t_s - ts[k - 1]) / (ts[k] - ts[k - 1])
        return (lat[k - 1] + (lat[k] - lat[k - 1]) * f, lng[k - 1] + (lng[k] - lng[k - 1]) * f)


class Router:
    def __init__(self, network: RoadNetwork, *, max_snap_m: float = DEFAULT_MAX_SNAP_M,
                 fallback: EtaFallback | None = None) -> None:
        if not max_snap_m > 0:
            raise ValueError("max_snap_m: must be > 0")
        self.network = network
        self.max_snap_m = max_snap_m
        self.fallback = fallback
        self._trees: OrderedDict[int, tuple[NDArray[np.float64], NDArray[np.int32]]] = (
            OrderedDict())
        per_tree = 12 * network.n_nodes  # float64 seconds + int32 next hop per node
        self._max_trees = max(8, TREE_CACHE_BYTES // per_tree)
        self.trees_computed = 0
        # The last routes asked for: a trip's quote, its drive and its meter ask for the same
        # pickup -> dropoff (the driver arrives exactly at the pickup).
        self._routes: OrderedDict[tuple[float, float, float, float], Route] = OrderedDict()

    # --- the questions -----------------------------------------------------------------------

    def snap(self, lat: float, lng: float) -> tuple[int, float]:
        """The nearest road node and the metres to it; `OffNetwork` beyond `max_snap_m`."""
        if not (math.isfinite(lat) and math.isfinite(lng) and -90 <= lat <= 90
                and -180 <= lng <= 180):
            raise RoadError(f"not a WGS84 position: ({lat}, {lng})")
        node, _ = self.network.nearest(lat, lng)
        dist = haversine_m(lat, lng, float(self.network.lat[node]),
                           float(self.network.lng[node]))
        if dist > self.max_snap_m:
            raise OffNetwork(
                f"({lat:.6f}, {lng:.6f}) is {dist:,.0f} m from the nearest road of "
                f"{self.network.name} (at most {self.max_snap_m:,.0f} m)")
        return node, dist

    def route(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float) -> Route:
        """The fastest drive, with its path; `OffNetwork` when an end is off the network."""
        key = (from_lat, from_lng, to_lat, to_lng)
        hit = self._routes.get(key)
        if hit is not None:
            self._routes.move_to_end(key)
            return hit
        route = self._route(from_lat, from_lng, to_lat, to_lng)
        self._routes[key] = route
        if len(self._routes) > ROUTE_CACHE:
            self._routes.popitem(last=False)
        return route

    def _route(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float) -> Route:
        a, a_m = self.snap(from_lat, from_lng)
        b, b_m = self.snap(to_lat, to_lng)
        path = self._path(a, b)
        hop_m, hop_s = self.network.hop_lengths(path)
        net = self.network
        lat = np.concatenate(([from_lat], net.lat[path], [to_lat]))
        lng = np.concatenate(([from_lng], net.lng[path], [to_lng]))
        step_m = np.concatenate(([a_m], hop_m, [b_m]))
        step_s = np.concatenate(([a_m / ACCESS_SPEED_MPS], hop_s, [b_m / ACCESS_SPEED_MPS]))
        elapsed = np.concatenate(([0.0], np.cumsum(step_s)))
        along = np.concatenate(([0.0], np.cumsum(step_m)))
        return Route(float(elapsed[-1]), float(along[-1]), lat, lng, elapsed, along)

    def travel(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float,
               when: float = 0.0) -> tuple[float, float]:
        """(seconds, metres) of the fastest drive."""
        try:
            r = self.route(from_lat, from_lng, to_lat, to_lng)
        except OffNetwork:
            if self.fallback is None:
                raise
            return self.fallback.travel(from_lat, from_lng, to_lat, to_lng, when)
        return r.seconds, r.metres

    def pickup_etas(self, from_lats: Sequence[float], from_lngs: Sequence[float],
                    to_lat: float, to_lng: float, when: float = 0.0) -> list[float]:
        """Dispatch's ranking question: seconds for a driver at each (from_lats[i],
        from_lngs[i]) to reach the pickup; one shortest-path tree answers them all. Drivers
        off the network (or all of them, when the pickup is) get the fallback's answer."""
        lats = np.asarray(from_lats, float)
        lngs = np.asarray(from_lngs, float)
        if len(lats) != len(lngs):
            raise ValueError("from_lats and from_lngs: one of each per driver")
        if not len(lats):
            return []
        try:
            b, b_m = self.snap(to_lat, to_lng)
        except OffNetwork:
            if self.fallback is None:
                raise
            return self.fallback.pickup_etas(from_lats, from_lngs, to_lat, to_lng, when)
        nodes, a_m = self._snap_many(lats, lngs)
        to_b, _ = self._tree(b)
        etas = to_b[nodes] + (a_m + b_m) / ACCESS_SPEED_MPS
        off = a_m > self.max_snap_m
        if off.any():
            if self.fallback is None:
                k = int(np.flatnonzero(off)[0])
                self.snap(float(lats[k]), float(lngs[k]))  # raises, naming the position
            else:
                idx = np.flatnonzero(off)
                etas[idx] = self.fallback.pickup_etas(lats[idx].tolist(), lngs[idx].tolist(),
                                                      to_lat, to_lng, when)
        return [float(e) for e in etas]

    def _snap_many(self, lats: NDArray[np.float64], lngs: NDArray[np.float64]
                   ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """The nearest node of each position and the great-circle metres to it."""
        ok = (np.isfinite(lats) & np.isfinite(lngs) & (np.abs(lats) <= 90)
              & (np.abs(lngs) <= 180))
        if not ok.all():
            k = int(np.flatnonzero(~ok)[0])
            raise RoadError(f"not a WGS84 position: ({lats[k]}, {lngs[k]})")
        net = self.network
        nodes = net.nearest_many(lats, lngs)
        return nodes, haversine_many(lats, lngs, net.lat[nodes], net.lng[nodes])

    # --- shortest-path trees -----------------------------------------------------------------

    def _tree(self, target: int) -> tuple[NDArray[np.float64], NDArray[np.int32]]:
        """Every node's seconds to `target`, and its next node on the way there."""
        hit = self._trees.get(target)
        if hit is not None:
            self._trees.move_to_end(target)
            return hit
        seconds, nxt = dijkstra(self.network.reverse, directed=True, indices=target,
                                return_predecessors=True)
        tree = (seconds, nxt.astype(np.int32))
        self.trees_computed += 1
        self._trees[target] = tree
        if len(self._trees) > self._max_trees:
            self._trees.popitem(last=False)
        return tree

    def _path(self, a: int, b: int) -> NDArray[np.int64]:
        _, nxt = self._tree(b)
        path = [a]
        node = a
        limit = self.network.n_nodes
        while node != b:
            node = int(nxt[node])
            if node < 0 or len(path) > limit:  # cannot happen on a strongly connected graph
                raise RoadError(f"road network {self.network.name}: no path from node {a} "
                                f"to node {b}")
            path.append(node)
        return np.array(path, np.int64)
