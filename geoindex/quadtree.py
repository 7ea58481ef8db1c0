"""Quadtree backend: a linear quadtree on longitude/latitude.

Keys are Morton codes of 26 levels (about 0.6 m x 0.3 m at the equator), so every quadtree
node is a contiguous key range of a sorted part. A query walks the tree best-first from the
root, ordered by a lower bound of the great-circle distance to each node's box, and scans a
node once it holds at most ``LEAF`` entries. The bound wraps around the antimeridian and
degrades gracefully at the poles, so no place on Earth needs special cases.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from . import kernels as kn
from .qt_nearest import qt_nearest_into, qt_nearest_many

LEAF = kn.QT_LEAF
LOG_COLS = 7  # level, ix, iy, lo_base, hi_base, lo_delta, hi_delta


@njit(cache=True)
def box_lower_bound(q, level, ix, iy):  # type: ignore[no-untyped-def]
    """A lower bound of the haversine term ``a`` from q to any point of the node's box."""
    w = 360.0 / (1 << level)
    h = 180.0 / (1 << level)
    lng0 = -180.0 + ix * w
    lng1 = lng0 + w
    p0 = math.radians(-90.0 + iy * h)
    p1 = math.radians(-90.0 + (iy + 1) * h)
    qp = q[3]
    dphi = 0.0
    if qp < p0:
        dphi = p0 - qp
    elif qp > p1:
        dphi = qp - p1
    qlng = q[5]
    dlam = 0.0
    if qlng < lng0 or qlng > lng1:
        d0 = (lng0 - qlng) % 360.0
        d1 = (qlng - lng1) % 360.0
        dlam = math.radians(min(d0, d1, 180.0))
    cmin = max(0.0, min(math.cos(p0), math.cos(p1)))
    s1 = math.sin(dphi * 0.5)
    s2 = math.sin(dlam * 0.5)
    return s1 * s1 + q[4] * cmin * s2 * s2


@njit(cache=True)
def _heap_push(hlb, H, hn, lb, row):  # type: ignore[no-untyped-def]
    if hn == hlb.shape[0]:
        nlb = np.empty(hn * 2)
        nH = np.empty((hn * 2, 7), np.int64)
        nlb[:hn] = hlb
        nH[:hn] = H
        hlb, H = nlb, nH
    i = hn
    while i > 0:
        parent = (i - 1) >> 1
        if hlb[parent] <= lb:
            break
        hlb[i] = hlb[parent]
        H[i] = H[parent]
        i = parent
    hlb[i] = lb
    H[i] = row
    return hlb, H, hn + 1


@njit(cache=True)
def _heap_pop(hlb, H, hn):  # type: ignore[no-untyped-def]
    """Removes the minimum (returned by the caller reading index 0 first)."""
    hn -= 1
    lb = hlb[hn]
    row = H[hn].copy()
    i = 0
    while True:
        c = 2 * i + 1
        if c >= hn:
            break
        if c + 1 < hn and hlb[c + 1] < hlb[c]:
            c += 1
        if hlb[c] >= lb:
            break
        hlb[i] = hlb[c]
        H[i] = H[c]
        i = c
    if hn > 0:
        hlb[i] = lb
        H[i] = row
    return hn


@njit(cache=True, nogil=True)
def qt_search(bK, bF, bM, mask, dK, dF, dM, lat, lng, k, radius, avail_only, cls, min_ts,
              append_mode, log):  # type: ignore[no-untyped-def]
    q = kn.query_point(lat, lng)
    a_rad = kn.a_of_radius(radius)
    ba, bd, be = kn.new_buffer(k, append_mode)
    cnt = 0
    examined = 0
    nodes = 0
    nlog = 0
    hlb = np.empty(64)
    H = np.empty((64, 7), np.int64)
    row = np.empty(7, np.int64)
    row[0] = 0
    row[1] = 0
    row[2] = 0
    row[3] = 0
    row[4] = bK.shape[0]
    row[5] = 0
    row[6] = dK.shape[0]
    hlb, H, hn = _heap_push(hlb, H, 0, 0.0, row)
    child = np.empty(7, np.int64)
    cut_b = np.empty(5, np.int64)
    cut_d = np.empty(5, np.int64)
    while hn > 0:
        lb = hlb[0]
        node = H[0].copy()
        hn = _heap_pop(hlb, H, hn)
        bound = kn.current_bound(ba, cnt, k, a_rad, append_mode) * (1.0 + kn.SLACK) + 1e-18
        if lb > bound:
            break
        nodes += 1
        level, ix, iy = node[0], node[1], node[2]
        lo_b, hi_b, lo_d, hi_d = node[3], node[4], node[5], node[6]
        if (hi_b - lo_b) + (hi_d - lo_d) <= LEAF or level == kn.QT_LEVELS:
            ba, bd, be, cnt, ex = kn.scan(bF, bM, mask, True, lo_b, hi_b, False, q, radius,
                                          a_rad, avail_only, cls, min_ts, k, ba, bd, be, cnt,
                                          append_mode)
            examined += ex
            ba, bd, be, cnt, ex = kn.scan(dF, dM, mask, False, lo_d, hi_d, True, q, radius,
                                          a_rad, avail_only, cls, min_ts, k, ba, bd, be, cnt,
                                          append_mode)
            examined += ex
            if nlog < log.shape[0]:
                log[nlog] = node
                nlog += 1
            continue
        shift = 2 * (kn.QT_LEVELS - level - 1)
        prefix = kn.spread_bits(ix) | (kn.spread_bits(iy) << 1)
        cut_b[0] = lo_b
        cut_b[4] = hi_b
        cut_d[0] = lo_d
        cut_d[4] = hi_d
        for c in range(1, 4):
            key = (prefix * 4 + c) << shift
            cut_b[c] = kn.lower_bound(bK, cut_b[c - 1], hi_b, key)
            cut_d[c] = kn.lower_bound(dK, cut_d[c - 1], hi_d, key)
        for c in range(4):
            if cut_b[c] == cut_b[c + 1] and cut_d[c] == cut_d[c + 1]:
                continue
            cix = 2 * ix + (c & 1)
            ciy = 2 * iy + (c >> 1)
            clb = box_lower_bound(q, level + 1, cix, ciy)
            if clb > bound:
                continue
            child[0] = level + 1
            child[1] = cix
            child[2] = ciy
            child[3] = cut_b[c]
            child[4] = cut_b[c + 1]
            child[5] = cut_d[c]
            child[6] = cut_d[c + 1]
            hlb, H, hn = _heap_push(hlb, H, hn, clb, child)
    out_f, out_i = kn.finish(ba, bd, be, cnt, k, append_mode, bF, bM, dF, dM)
    stats = np.empty(4, np.int64)
    stats[0] = examined
    stats[1] = nodes
    stats[2] = nlog
    stats[3] = 0
    return out_f, out_i, stats


def _compact_bits(v: int) -> int:
    v &= 0x5555555555555555
    out = 0
    bit = 0
    while v:
        if v & 1:
            out |= 1 << bit
        v >>= 2
        bit += 1
    return out


class QuadtreeBackend:
    """Cell keys and searches of the quadtree backend; stateless apart from its settings."""

    name = "quadtree"
    default_resolution = 17  # cells of about 230 m x 150 m at New York's latitude
    max_resolution = kn.QT_LEVELS

    def __init__(self, resolution: int | None = None) -> None:
        res = self.default_resolution if resolution is None else resolution
        if isinstance(res, bool) or not isinstance(res, int) or not 0 <= res <= kn.QT_LEVELS:
            raise ValueError(f"resolution: quadtree levels are 0..{kn.QT_LEVELS}, got {res!r}")
        self.resolution = res

    def key(self, lat: float, lng: float) -> int:
        return int(kn.morton_key(lat, lng))

    def keys(self, lats: NDArray[np.float64], lngs: NDArray[np.float64]) -> NDArray[np.int64]:
        return kn.morton_keys(lats, lngs)  # type: ignore[no-any-return]

    def search(self, parts: Any, lat: float, lng: float, k: int, radius: float,
               avail_only: bool, cls: int, min_ts: float, append_mode: bool,
               log: NDArray[np.int64], explain: bool = False) -> tuple[Any, Any, Any]:
        return qt_search(*parts, lat, lng, k, radius, avail_only, cls, min_ts,  # type: ignore
                         append_mode, log)

    # nearest(): Snapshot calls the compiled kernel itself (no Python frame in between)
    into_kernel = staticmethod(qt_nearest_into)

    def nearest_many(self, parts: Any, lats: NDArray[np.float64], lngs: NDArray[np.float64],
                     k: int, radius: float, avail_only: bool, cls: int,
                     min_ts: float) -> tuple[Any, ...]:
        return qt_nearest_many(*parts, lats, lngs, k, radius, avail_only, cls,  # type: ignore
                               min_ts)

    def new_log(self, n: int = 4096) -> NDArray[np.int64]:
        return np.empty((n, LOG_COLS), np.int64)  # the kernel reads only the rows it wrote

    def log_cells(self, log: NDArray[np.int64], lat: float,
                  lng: float) -> tuple[list[str], NDArray[np.int64], int]:
        """Cell labels, the (lo_b, hi_b, lo_d, hi_d) ranges scanned (rows of an array), and
        the deepest level."""
        rows = log.tolist()
        labels = [f"q{r[0]}/{r[1]}/{r[2]}" for r in rows]
        return labels, np.ascontiguousarray(log[:, 3:7]), max((r[0] for r in rows), default=0)

    def cell_counts(self, keys: NDArray[np.int64], avail: NDArray[np.bool_],
                    resolution: int) -> list[tuple[str, int, int]]:
        if not 0 <= resolution <= kn.QT_LEVELS:
            raise ValueError(f"resolution: quadtree levels are 0..{kn.QT_LEVELS}")
        parents = keys >> (2 * (kn.QT_LEVELS - resolution))
        uniq, inv = np.unique(parents, return_inverse=True)
        totals = np.bincount(inv, minlength=len(uniq))
        avails = np.bincount(inv, weights=avail.astype(np.float64), minlength=len(uniq))
        out = []
        for p, t, a in zip(uniq.tolist(), totals.tolist(), avails.tolist(), strict=False):
            label = f"q{resolution}/{_compact_bits(p)}/{_compact_bits(p >> 1)}"
            out.append((label, int(t), int(a)))
        return out

    def cell_box(self, label: str) -> tuple[float, float, float, float]:
        """(min_lng, min_lat, max_lng, max_lat) of a cell label `q<level>/<x>/<y>`."""
        level_s, x_s, y_s = label[1:].split("/")
        level, ix, iy = int(level_s), int(x_s), int(y_s)
        w = 360.0 / (1 << level)
        h = 180.0 / (1 << level)
        return (-180.0 + ix * w, -90.0 + iy * h, -180.0 + (ix + 1) * w, -90.0 + (iy + 1) * h)
