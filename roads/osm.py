"""Read the drivable roads of an OpenStreetMap extract (`.osm`, `.osm.bz2`, `.osm.gz`,
`.osm.pbf`) into plain arrays, with pyosmium (libosmium's reader: XML and PBF alike).

A way becomes one directed edge per pair of consecutive nodes and per direction a car may
drive it (`roads.speeds`); way nodes missing from the extract (clipped at its border) cut the
way there. Bad input raises `RoadError` naming the file and the problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ridehail.kernel.geo import haversine_many

from .speeds import directions, is_drivable, speed_mps

SUFFIXES = (".osm", ".osm.bz2", ".osm.gz", ".osm.pbf", ".pbf")


class RoadError(ValueError):
    """A road file that cannot be used: missing, not OpenStreetMap, or without drivable roads;
    or a point the network cannot route."""


@dataclass(frozen=True)
class RoadEdges:
    """Nodes (OSM ids and WGS84 positions) and directed edges (indices into the nodes, with
    their length in metres and free-flow speed in m/s)."""

    node_id: NDArray[np.int64]
    lat: NDArray[np.float64]
    lng: NDArray[np.float64]
    src: NDArray[np.int64]
    dst: NDArray[np.int64]
    length_m: NDArray[np.float64]
    speed_mps: NDArray[np.float64]


def read_osm_roads(path: str | os.PathLike[str]) -> RoadEdges:
    p = Path(path)
    if not p.is_file():
        raise RoadError(f"road file {p}: no such file")
    if not p.name.lower().endswith(SUFFIXES):
        raise RoadError(f"road file {p}: not an OpenStreetMap file name (expected one of "
                        f"{', '.join(SUFFIXES)})")
    import osmium  # here, not at the top: only a city with a road file needs it

    index: dict[int, int] = {}
    lats: list[float] = []
    lngs: list[float] = []
    src: list[int] = []
    dst: list[int] = []
    speeds: list[float] = []

    def node(ref: int, lat: float, lng: float) -> int:
        k = index.get(ref)
        if k is None:
            k = index[ref] = len(lats)
            lats.append(lat)
            lngs.append(lng)
        return k

    try:
        ways = (osmium.FileProcessor(str(p), osmium.osm.NODE | osmium.osm.WAY)
                .with_locations()
                .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
                .with_filter(osmium.filter.KeyFilter("highway")))
        for way in ways:
            if not isinstance(way, osmium.osm.Way):
                continue
            tags = {t.k: t.v for t in way.tags}
            if not is_drivable(tags):
                continue
            forward, backward = directions(tags)
            speed = speed_mps(tags)
            prev = None
            for n in way.nodes:
                if not n.location.valid():
                    prev = None  # the extract clipped this node: the way breaks here
                    continue
                k = node(n.ref, n.location.lat, n.location.lon)
                if prev is not None and prev != k:
                    if forward:
                        src.append(prev)
                        dst.append(k)
                        speeds.append(speed)
                    if backward:
                        src.append(k)
                        dst.append(prev)
                        speeds.append(speed)
                prev = k
    except RuntimeError as exc:  # libosmium's parse errors
        raise RoadError(f"road file {p}: not a readable OpenStreetMap file ({exc})") from None
    if not src:
        raise RoadError(f"road file {p}: no drivable roads (no way with a car's highway tag)")
    lat = np.array(lats)
    lng = np.array(lngs)
    s = np.array(src, np.int64)
    d = np.array(dst, np.int64)
    return RoadEdges(np.array(list(index), np.int64), lat, lng, s, d,
                     haversine_many(lat[s], lng[s], lat[d], lng[d]), np.array(speeds))
