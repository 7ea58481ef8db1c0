"""H3 backend: drivers keyed by their H3 cell; queries search cells nearest-first.

Each cell's centre and circumradius (the farthest boundary vertex, plus a margin) bound the
distance from the query to anything in the cell. The query takes the grid disk of K rings
around its cell, scans cells in order of that bound, and stops when the bound exceeds the
k-th distance. Ring K+1 bounds everything outside the disk (any path leaving the disk crosses
it); when that bound is not large enough the disk is doubled, and past ``MAX_RINGS`` the
search falls back to a full scan. grid_disk handles pentagons, so no special case is needed.
"""

from __future__ import annotations

import math
from typing import Any

import h3
import numpy as np
from h3.api import basic_int as h3i
from numba import njit
from numpy.typing import NDArray

from . import kernels as kn
from .geo import to_xyz

MAX_RINGS = 16
LOG_COLS = 5  # cell, lo_base, hi_base, lo_delta, hi_delta
RADIUS_MARGIN = 1.0 + 1e-6
DISK_CACHE = 32768


@njit(cache=True, nogil=True)
def h3_search(bK, bF, bM, mask, dK, dF, dM, cells, geo, n_inner, lat, lng, k, radius,
              avail_only, cls, min_ts, append_mode, log):  # type: ignore[no-untyped-def]
    q = kn.query_point(lat, lng)
    a_rad = kn.a_of_radius(radius)
    ba, bd, be = kn.new_buffer(k, append_mode)
    cnt = 0
    examined = 0
    nlog = 0
    scanned = 0
    need_more = 0
    n = cells.shape[0]
    nb = bK.shape[0]
    nd = dK.shape[0]
    if n == 0:  # fallback: everything
        ba, bd, be, cnt, ex = kn.scan(bF, bM, mask, True, 0, nb, False, q, radius, a_rad,
                                      avail_only, cls, min_ts, k, ba, bd, be, cnt, append_mode)
        examined += ex
        ba, bd, be, cnt, ex = kn.scan(dF, dM, mask, False, 0, nd, True, q, radius, a_rad,
                                      avail_only, cls, min_ts, k, ba, bd, be, cnt, append_mode)
        examined += ex
    else:
        lbs = np.empty(n)
        for i in range(n):
            dx = geo[i, 0] - q[0]
            dy = geo[i, 1] - q[1]
            dz = geo[i, 2] - q[2]
            ang = 2.0 * math.asin(min(1.0, 0.5 * math.sqrt(dx * dx + dy * dy + dz * dz)))
            ang -= geo[i, 3]
            if ang <= 0.0:
                lbs[i] = 0.0
            else:
                s = math.sin(0.5 * ang)
                lbs[i] = s * s
        outside = 2.0
        for i in range(n_inner, n):
            outside = min(outside, lbs[i])
        order = np.argsort(lbs[:n_inner])
        for t in range(n_inner):
            i = order[t]
            bound = kn.current_bound(ba, cnt, k, a_rad, append_mode)
            if lbs[i] > bound * (1.0 + kn.SLACK) + 1e-18:
                break
            c = cells[i]
            lo_b = kn.lower_bound(bK, 0, nb, c)
            hi_b = kn.lower_bound(bK, lo_b, nb, c + 1)
            lo_d = kn.lower_bound(dK, 0, nd, c)
            hi_d = kn.lower_bound(dK, lo_d, nd, c + 1)
            scanned += 1
            ba, bd, be, cnt, ex = kn.scan(bF, bM, mask, True, lo_b, hi_b, False, q, radius,
                                          a_rad, avail_only, cls, min_ts, k, ba, bd, be, cnt,
                                          append_mode)
            examined += ex
            ba, bd, be, cnt, ex = kn.scan(dF, dM, mask, False, lo_d, hi_d, True, q, radius,
                                          a_rad, avail_only, cls, min_ts, k, ba, bd, be, cnt,
                                          append_mode)
            examined += ex
            if nlog < log.shape[0]:
                log[nlog, 0] = c
                log[nlog, 1] = lo_b
                log[nlog, 2] = hi_b
                log[nlog, 3] = lo_d
                log[nlog, 4] = hi_d
                nlog += 1
        bound = kn.current_bound(ba, cnt, k, a_rad, append_mode) * (1.0 + kn.SLACK) + 1e-18
        if outside <= bound:
            need_more = 1
    out_f, out_i = kn.finish(ba, bd, be, cnt, k, append_mode, bF, bM, dF, dM)
    stats = np.empty(4, np.int64)
    stats[0] = examined
    stats[1] = scanned
    stats[2] = nlog
    stats[3] = need_more
    return out_f, out_i, stats


class H3Backend:
    """Cell keys (H3 integers) and searches of the H3 backend, with per-cell geometry caches."""

    name = "h3"
    default_resolution = 9

    def __init__(self, resolution: int | None = None) -> None:
        res = self.default_resolution if resolution is None else resolution
        if isinstance(res, bool) or not isinstance(res, int) or not 0 <= res <= 15:
            raise ValueError(f"resolution: H3 resolutions are 0..15, got {res!r}")
        self.resolution = res
        self._geo: dict[int, tuple[float, float, float, float]] = {}
        self._disks: dict[int, tuple[int, Any, Any, int]] = {}
        self._empty_cells = np.zeros(0, np.int64)
        self._empty_geo = np.zeros((0, 4))
        self._no_log = self.new_log(0)

    def key(self, lat: float, lng: float) -> int:
        return int(h3i.latlng_to_cell(lat, lng, self.resolution))

    def keys(self, lats: NDArray[np.float64], lngs: NDArray[np.float64]) -> NDArray[np.int64]:
        res = self.resolution
        f = h3i.latlng_to_cell
        pairs = zip(lats.tolist(), lngs.tolist(), strict=True)
        return np.fromiter((f(a, b, res) for a, b in pairs),
                           np.int64, lats.shape[0])

    def _cell_geo(self, cell: int) -> tuple[float, float, float, float]:
        g = self._geo.get(cell)
        if g is None:
            clat, clng = h3i.cell_to_latlng(cell)
            cx, cy, cz = to_xyz(clat, clng)
            rad = 0.0
            for vlat, vlng in h3i.cell_to_boundary(cell):
                vx, vy, vz = to_xyz(vlat, vlng)
                ch = math.sqrt((vx - cx) ** 2 + (vy - cy) ** 2 + (vz - cz) ** 2)
                rad = max(rad, 2.0 * math.asin(min(1.0, ch / 2)))
            g = (cx, cy, cz, rad * RADIUS_MARGIN + 1e-9)
            if len(self._geo) > 4 * DISK_CACHE:
                self._geo.clear()
            self._geo[cell] = g
        return g

    def _disk(self, cell: int, rings: int) -> tuple[Any, Any, int]:
        hit = self._disks.get(cell)
        if hit is not None and hit[0] >= rings:
            return hit[1], hit[2], hit[3]
        inner = h3i.grid_disk(cell, rings)
        inner_set = set(inner)
        outer = [c for c in h3i.grid_disk(cell, rings + 1) if c not in inner_set]
        order = list(inner) + outer
        cells = np.array(order, np.int64)
        geo = np.array([self._cell_geo(c) for c in order])
        if len(self._disks) >= DISK_CACHE:
            self._disks.clear()
        self._disks[cell] = (rings, cells, geo, len(inner))
        return cells, geo, len(inner)

    def search(self, parts: Any, lat: float, lng: float, k: int, radius: float,
               avail_only: bool, cls: int, min_ts: float, append_mode: bool,
               log: NDArray[np.int64], explain: bool = False) -> tuple[Any, Any, Any]:
        origin = h3i.latlng_to_cell(lat, lng, self.resolution)
        hit = self._disks.get(origin)
        rings = 1 if hit is None else hit[0]
        while True:
            if rings > MAX_RINGS:
                cells, geo, n_inner = self._empty_cells, self._empty_geo, 0
            else:
                cells, geo, n_inner = self._disk(origin, rings)
            out = h3_search(*parts, cells, geo, n_inner, lat, lng, k, radius,  # type: ignore
                            avail_only, cls, min_ts, append_mode, log)
            if not out[2][3]:
                return out  # type: ignore[no-any-return]
            rings *= 2

    def into_kernel(self, bK: Any, bF: Any, bM: Any, mask: Any, dK: Any, dF: Any, dM: Any,
                    lat: float, lng: float, k: int, radius: float, avail_only: bool, cls: int,
                    min_ts: float, out_f: NDArray[np.float64],
                    out_i: NDArray[np.int64]) -> int:
        """``qt_nearest.qt_nearest_into``'s contract, by the growing H3 search."""
        f, i, _ = self.search((bK, bF, bM, mask, dK, dF, dM), lat, lng, k, radius, avail_only,
                              cls, min_ts, False, self._no_log)
        cnt = int(f.shape[0])
        if cnt > out_f.shape[0]:
            return 2 * cnt
        out_f[:cnt] = f
        out_i[:cnt] = i
        d = f[:, 0]
        return 2 * cnt + int(cnt > 1 and bool((d[1:] == d[:-1]).any()))

    def nearest_many(self, parts: Any, lats: NDArray[np.float64], lngs: NDArray[np.float64],
                     k: int, radius: float, avail_only: bool, cls: int,
                     min_ts: float) -> tuple[Any, ...]:
        """The rows of ``qt_nearest.qt_nearest_many``, one compiled search per query (each
        query's disk of cells comes from Python's H3 and the disk cache)."""
        n = lats.shape[0]
        out_f = np.empty((n, k, 4))
        out_i = np.full((n, k, 3), 0, np.int64)
        out_f[:, :, 0] = np.inf
        out_f[:, :, 1:] = np.nan
        out_i[:, :, 0] = -1
        counts = np.zeros(n, np.int64)
        redo = np.zeros(n, np.uint8)
        for q, (lat, lng) in enumerate(zip(lats.tolist(), lngs.tolist(), strict=True)):
            f, i, _ = self.search(parts, lat, lng, k, radius, avail_only, cls, min_ts, False,
                                  self._no_log)
            m = f.shape[0]
            d = f[:, 0]
            if m > k or (m > 1 and bool((d[1:] == d[:-1]).any())):
                redo[q] = 1  # tied at the k-th place: the caller orders them by id
                continue
            counts[q] = m
            out_f[q, :m] = f
            out_i[q, :m] = i
        return out_f, out_i, counts, redo

    def new_log(self, n: int = 4096) -> NDArray[np.int64]:
        return np.empty((n, LOG_COLS), np.int64)  # the kernel reads only the rows it wrote

    def log_cells(self, log: NDArray[np.int64], lat: float,
                  lng: float) -> tuple[list[str], NDArray[np.int64], int]:
        """Cell ids, the (lo_b, hi_b, lo_d, hi_d) ranges scanned (rows of an array) and the
        number of rings reached."""
        origin = h3i.latlng_to_cell(lat, lng, self.resolution)
        rows = log.tolist()
        labels = [h3.int_to_str(r[0]) for r in rows]
        rings = 0
        for r in rows:
            try:
                rings = max(rings, int(h3i.grid_distance(origin, r[0])) + 1)
            except h3.H3BaseException:
                rings = max(rings, 1)
        return labels, np.ascontiguousarray(log[:, 1:5]), rings

    def cell_counts(self, keys: NDArray[np.int64], avail: NDArray[np.bool_],
                    resolution: int) -> list[tuple[str, int, int]]:
        if not 0 <= resolution <= self.resolution:
            raise ValueError(f"resolution: must be in 0..{self.resolution} (the index's)")
        uniq, inv = np.unique(keys, return_inverse=True)
        totals = np.bincount(inv, minlength=len(uniq)).tolist()
        avails = np.bincount(inv, weights=avail.astype(np.float64), minlength=len(uniq)).tolist()
        agg: dict[int, list[int]] = {}
        for c, t, a in zip(uniq.tolist(), totals, avails, strict=False):
            p = c if resolution == self.resolution else h3i.cell_to_parent(c, resolution)
            slot = agg.setdefault(p, [0, 0])
            slot[0] += int(t)
            slot[1] += int(a)
        return [(h3.int_to_str(c), t, a) for c, (t, a) in sorted(agg.items())]
