"""The quadtree's k-nearest kernels: one query into caller-owned buffers, and a columnar batch.

The search is the best-first walk of :func:`geoindex.quadtree.qt_search`, made cheaper where the
profile showed the time going:

- no allocation per query: the heap and the k-best buffer are scratch arrays reused across a
  batch, and a single query writes its rows into arrays the caller passes in (numba boxing a
  returned array costs more than the whole search);
- no reference counting per query: the searches are compiled without numba's runtime
  (``NO_REFCOUNTS``; they allocate nothing), since with it every inlined helper taking an array
  paid an atomic increment and decrement of its count, half of a batch query's time in the
  profile; the entry points allocate, then call them;
- a batch remembers the key ranges of the cells it looked up (``CELLS`` of them, by a hash of
  level and prefix): its queries run in Morton order, so neighbours ask for the same cells;
- in a batch, a query's first bound comes from the previous query's k nearest when they are
  near (``seed_bound``), not from a scan of the entries next to its key;
- path compression: a node is replaced by the deepest node holding the same entries (the common
  Morton prefix of its first and last keys), so a city's queries skip the levels above it and
  their binary searches;
- a box bound in polynomials: Taylor lower bounds of sin and cos in place of the four trig calls
  (a smaller lower bound is still a lower bound, and at city scale it is the same to 1e-9).

Ranking, filters, ties and distances are those of ``qt_search``: candidates by the haversine
term ``a`` with every tie of the k-th kept, distances by the exact haversine formula.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from . import kernels as kn

LEAF = kn.QT_LEAF

H_COLS = 6  # level, prefix, lo_base, hi_base, lo_delta, hi_delta
HEAP = 1024  # nodes waiting in one search; more (rare) falls back to the growing search
TIES = 8  # room for ties with the k-th beyond k; more falls back too
CELLS = 256  # cell ranges a batch remembers (a power of two)
SEED_SPAN = 9.0  # a seeded first bound serves up to this many times the previous k-th's term
# numba's option compiling a function without its runtime: no reference counts, no allocation
NO_REFCOUNTS: dict[str, Any] = {"_nrt": False}
DEG2RAD = math.pi / 180.0


@njit(cache=True, inline="always")
def _compact(v):  # type: ignore[no-untyped-def]
    v &= 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    v = (v | (v >> 16)) & 0x00000000FFFFFFFF
    return v


@njit(cache=True, inline="always")
def _sin_lb(s):  # type: ignore[no-untyped-def]
    """A lower bound of sin(s) for 0 <= s <= pi/2 (Taylor, remainder cos(xi) s^5/120 >= 0)."""
    return s - s * s * s * (1.0 / 6.0)


@njit(cache=True, inline="always")
def box_lb(q, level, prefix):  # type: ignore[no-untyped-def]
    """A lower bound of the haversine term ``a`` from q to any point of the node's box
    (the bound of ``quadtree.box_lower_bound`` with sin and cos bounded from below)."""
    ix = _compact(prefix)
    iy = _compact(prefix >> 1)
    w = 360.0 / (1 << level)
    h = 180.0 / (1 << level)
    lng0 = -180.0 + ix * w
    lng1 = lng0 + w
    p0 = (-90.0 + iy * h) * DEG2RAD
    p1 = (-90.0 + (iy + 1) * h) * DEG2RAD
    qp = q[3]
    dphi = 0.0
    if qp < p0:
        dphi = p0 - qp
    elif qp > p1:
        dphi = qp - p1
    qlng = q[5]
    dlam = 0.0
    if qlng < lng0 or qlng > lng1:
        d0 = lng0 - qlng  # (lng0 - qlng) mod 360, both in [-180, 180]
        if d0 < 0.0:
            d0 += 360.0
        d1 = qlng - lng1
        if d1 < 0.0:
            d1 += 360.0
        dlam = min(d0, d1, 180.0) * DEG2RAD
    t = max(abs(p0), abs(p1))
    t2 = t * t
    # cos(t) >= 1 - t^2/2 + t^4/24 - t^6/720 on [0, pi/2] (remainder cos(xi) t^8/8! >= 0)
    cmin = max(0.0, 1.0 - t2 * (0.5 - t2 * (1.0 / 24.0 - t2 * (1.0 / 720.0))))
    s1 = _sin_lb(dphi * 0.5)
    s2 = _sin_lb(dlam * 0.5)
    return s1 * s1 + q[4] * cmin * s2 * s2


@njit(cache=True, inline="always")
def _common_level(kmin, kmax, level):  # type: ignore[no-untyped-def]
    """The deepest level, at least ``level``, whose node holds both keys."""
    x = kmin ^ kmax
    if x == 0:
        return kn.QT_LEVELS
    top = 51  # keys hold 2 * QT_LEVELS = 52 bits
    while not (x >> top) & 1:
        top -= 1
    deepest = kn.QT_LEVELS - 1 - (top >> 1)
    return max(level, deepest)


@njit(cache=True, inline="always")
def _push_node(hlb, H, hn, lb, level, prefix, lo_b, hi_b, lo_d, hi_d):  # type: ignore
    """Pushes a node onto the fixed-size heap; returns the new size, or -1 when it is full."""
    if hn == hlb.shape[0]:
        return -1
    i = hn
    while i > 0:
        parent = (i - 1) >> 1
        if hlb[parent] <= lb:
            break
        hlb[i] = hlb[parent]
        for c in range(H_COLS):
            H[i, c] = H[parent, c]
        i = parent
    hlb[i] = lb
    H[i, 0] = level
    H[i, 1] = prefix
    H[i, 2] = lo_b
    H[i, 3] = hi_b
    H[i, 4] = lo_d
    H[i, 5] = hi_d
    return hn + 1


@njit(cache=True, inline="always")
def _pop_node(hlb, H, hn, node):  # type: ignore[no-untyped-def]
    """Copies the minimum into ``node`` and removes it; returns the new size."""
    for c in range(H_COLS):
        node[c] = H[0, c]
    hn -= 1
    lb = hlb[hn]
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
        for j in range(H_COLS):
            H[i, j] = H[c, j]
        i = c
    if hn > 0:
        hlb[i] = lb
        for j in range(H_COLS):
            H[i, j] = H[hn, j]
    return hn


@njit(cache=True, inline="always")
def _push_range(q, hlb, H, hn, bound, level, bK, lo_b, hi_b, dK, lo_d, hi_d):  # type: ignore
    """Pushes the node holding these ranges, compressed to the deepest one holding them all
    (-1: the heap is full)."""
    if lo_b == hi_b and lo_d == hi_d:
        return hn
    if lo_b < hi_b:
        kmin = bK[lo_b]
        kmax = bK[hi_b - 1]
        if lo_d < hi_d:
            kmin = min(kmin, dK[lo_d])
            kmax = max(kmax, dK[hi_d - 1])
    else:
        kmin = dK[lo_d]
        kmax = dK[hi_d - 1]
    lvl = _common_level(kmin, kmax, level)
    prefix = kmin >> (2 * (kn.QT_LEVELS - lvl))
    lb = box_lb(q, lvl, prefix)
    if lb > bound:
        return hn
    return _push_node(hlb, H, hn, lb, lvl, prefix, lo_b, hi_b, lo_d, hi_d)


@njit(cache=True, inline="always")
def _keep(ba, be, cnt, k, a, e):  # type: ignore[no-untyped-def]
    """Inserts a candidate by its chord term ``a``, keeping the k best and every one within the
    bound's slack of the k-th (the exact haversine may order those differently); returns the
    new count, or -1 when they overflow the buffer."""
    if cnt == ba.shape[0]:
        return -1
    i = cnt
    while i > 0 and ba[i - 1] > a:
        ba[i] = ba[i - 1]
        be[i] = be[i - 1]
        i -= 1
    ba[i] = a
    be[i] = e
    cnt += 1
    if cnt > k:
        kth = ba[k - 1] * (1.0 + kn.SLACK) + 1e-18
        while cnt > k and ba[cnt - 1] > kth:
            cnt -= 1
    return cnt


@njit(cache=True, inline="always")
def _scan(F, M, mask, use_mask, lo, hi, delta, q, a_rad, avail_only, cls, min_ts, k, ba, be,
          cnt):  # type: ignore[no-untyped-def]
    """Offers entries [lo, hi) of one part to the buffer, ranked by the chord (``a`` is exactly
    chord^2 / 4 on the unit sphere): the chord against the bound first (most entries stop
    there), then the filters. ``_finish`` puts the exact haversine on the few kept."""
    q0 = q[0]
    q1 = q[1]
    q2 = q[2]
    bound = (a_rad if cnt < k else min(a_rad, ba[k - 1])) * (1.0 + kn.SLACK) + 1e-18
    for j in range(lo, hi):
        dx = F[j, kn.F_X] - q0
        dy = F[j, kn.F_Y] - q1
        dz = F[j, kn.F_Z] - q2
        a = (dx * dx + dy * dy + dz * dz) * 0.25
        if a > bound:
            continue
        if use_mask and mask[j]:
            continue
        if avail_only and M[j, kn.M_AVAIL] == 0:
            continue
        if cls >= 0 and M[j, kn.M_CLS] != cls:
            continue
        if F[j, kn.F_TS] < min_ts:
            continue
        cnt = _keep(ba, be, cnt, k, a, -1 - j if delta else j)
        if cnt < 0:
            return -1
        if cnt >= k:
            bound = min(a_rad, ba[k - 1]) * (1.0 + kn.SLACK) + 1e-18
    return cnt


@njit(cache=True, inline="always")
def _finish(bF, dF, q, k, radius, ba, bd, be, cnt):  # type: ignore[no-untyped-def]
    """The kept candidates with the exact haversine: those within the radius, ordered by it,
    the k best and every one at the k-th's distance in metres (a tie for the caller, even
    where their terms ``a`` differ by a rounding). Returns their count."""
    m = 0
    for r in range(cnt):
        e = be[r]
        if e >= 0:
            la = bF[e, kn.F_LAT]
            ln = bF[e, kn.F_LNG]
        else:
            la = dF[-1 - e, kn.F_LAT]
            ln = dF[-1 - e, kn.F_LNG]
        a = kn.hav_a(q[3], q[4], q[5], la, ln)
        d = kn.R2 * math.asin(math.sqrt(min(1.0, a)))
        if d > radius:
            continue
        i = m
        while i > 0 and ba[i - 1] > a:
            ba[i] = ba[i - 1]
            bd[i] = bd[i - 1]
            be[i] = be[i - 1]
            i -= 1
        ba[i] = a
        bd[i] = d
        be[i] = e
        m += 1
    while m > k and bd[m - 1] > bd[k - 1]:
        m -= 1
    return m


@njit(cache=True, inline="always")
def set_query(q, lat, lng):  # type: ignore[no-untyped-def]
    """q = x, y, z, radians(lat), cos(radians(lat)), lng of the query point."""
    p = lat * DEG2RAD
    lam = lng * DEG2RAD
    c = math.cos(p)
    q[0] = c * math.cos(lam)
    q[1] = c * math.sin(lam)
    q[2] = math.sin(p)
    q[3] = p
    q[4] = c
    q[5] = lng


@njit(cache=True, **NO_REFCOUNTS)
def knn(bK, bF, bM, mask, dK, dF, dM, k, radius, avail_only, cls, min_ts,
        q, hlb, H, node, ba, bd, be):  # type: ignore[no-untyped-def]
    """One query (the point ``q``, see ``set_query``) into the scratch buffers; returns the
    count of candidates kept in ``ba, bd, be`` (k, fewer, or more when tied with the k-th), or
    -1 when a fixed buffer overflowed (the caller falls back to ``quadtree.qt_search``, which
    grows its buffers). Entries: ``e >= 0`` is a base row, ``-1 - e`` a delta row."""
    a_rad = kn.a_of_radius(radius)
    cnt = 0
    hn = _push_range(q, hlb, H, 0, a_rad * (1.0 + kn.SLACK) + 1e-18, 0, bK, 0, bK.shape[0],
                     dK, 0, dK.shape[0])
    while hn > 0:
        lb = hlb[0]
        hn = _pop_node(hlb, H, hn, node)
        bound = (a_rad if cnt < k else min(a_rad, ba[k - 1])) * (1.0 + kn.SLACK) + 1e-18
        if lb > bound:
            break
        level = node[0]
        lo_b, hi_b, lo_d, hi_d = node[2], node[3], node[4], node[5]
        if (hi_b - lo_b) + (hi_d - lo_d) <= LEAF or level == kn.QT_LEVELS:
            cnt = _scan(bF, bM, mask, True, lo_b, hi_b, False, q, a_rad, avail_only, cls,
                        min_ts, k, ba, be, cnt)
            if cnt >= 0:
                cnt = _scan(dF, dM, mask, False, lo_d, hi_d, True, q, a_rad, avail_only, cls,
                            min_ts, k, ba, be, cnt)
            if cnt < 0:
                return -1
            continue
        shift = 2 * (kn.QT_LEVELS - level - 1)
        base_key = node[1] << 2
        cb = lo_b
        cd = lo_d
        for ch in range(4):
            if ch == 3:
                nb_hi = hi_b
                nd_hi = hi_d
            else:
                key = (base_key + ch + 1) << shift
                nb_hi = kn.lower_bound(bK, cb, hi_b, key)
                nd_hi = kn.lower_bound(dK, cd, hi_d, key)
            hn = _push_range(q, hlb, H, hn, bound, level + 1, bK, cb, nb_hi, dK, cd, nd_hi)
            if hn < 0:
                return -1
            cb = nb_hi
            cd = nd_hi
    return cnt


@njit(cache=True, inline="always")
def _estimate(F, M, mask, use_mask, lo, hi, q, avail_only, cls, min_ts, k, est, ne):
    # type: ignore[no-untyped-def]
    """Keeps in est[:ne] the k smallest squared chords of the entries [lo, hi) passing the
    filters; returns the new ne."""
    for j in range(lo, hi):
        dx = F[j, kn.F_X] - q[0]
        dy = F[j, kn.F_Y] - q[1]
        dz = F[j, kn.F_Z] - q[2]
        c2 = dx * dx + dy * dy + dz * dz
        if ne == k and c2 >= est[k - 1]:
            continue
        if use_mask and mask[j]:
            continue
        if avail_only and M[j, kn.M_AVAIL] == 0:
            continue
        if cls >= 0 and M[j, kn.M_CLS] != cls:
            continue
        if F[j, kn.F_TS] < min_ts:
            continue
        if ne == k:
            ne -= 1
        i = ne
        while i > 0 and est[i - 1] > c2:
            est[i] = est[i - 1]
            i -= 1
        est[i] = c2
        ne += 1
    return ne


@njit(cache=True, inline="always")
def _x26(lng):  # type: ignore[no-untyped-def]
    return min(max(int((lng + 180.0) * kn.QT_SX), 0), kn.QT_SIDE - 1)


@njit(cache=True, inline="always")
def _y26(lat):  # type: ignore[no-untyped-def]
    return min(max(int((lat + 90.0) * kn.QT_SY), 0), kn.QT_SIDE - 1)


@njit(cache=True, inline="always")
def _cell(bK, dK, level, prefix, cells):  # type: ignore[no-untyped-def]
    """lo_b, hi_b, lo_d, hi_d: the entries of the node (level, prefix) in each part, from
    ``cells`` (rows key, lo_b, hi_b, lo_d, hi_d) when it holds them, else by binary search
    (then kept there)."""
    key = (level << 52) | prefix  # a prefix holds 2 * level <= 52 bits
    h = (prefix ^ (prefix >> 5) ^ (prefix >> 11)) & (cells.shape[0] - 1)
    if cells[h, 0] == key:
        return cells[h, 1], cells[h, 2], cells[h, 3], cells[h, 4]
    nb = bK.shape[0]
    nd = dK.shape[0]
    shift = 2 * (kn.QT_LEVELS - level)
    k_lo = prefix << shift
    k_hi = (prefix + 1) << shift
    lo_b = kn.lower_bound(bK, 0, nb, k_lo)
    hi_b = kn.lower_bound(bK, lo_b, nb, k_hi)
    lo_d = kn.lower_bound(dK, 0, nd, k_lo)
    hi_d = kn.lower_bound(dK, lo_d, nd, k_hi)
    cells[h, 0] = key
    cells[h, 1] = lo_b
    cells[h, 2] = hi_b
    cells[h, 3] = lo_d
    cells[h, 4] = hi_d
    return lo_b, hi_b, lo_d, hi_d


@njit(cache=True, inline="always")
def grid_knn(bK, bF, bM, mask, dK, dF, dM, lat, lng, k, radius, avail_only, cls, min_ts,
             q, est, ba, be, cells, a_first):  # type: ignore[no-untyped-def]
    """One query by cells: a first bound (``a_first``, or when that is negative the k-th
    nearest of the entries next to the query's key: close in Morton order, so mostly close
    by), then every entry of the cells covering the bound's box, at the level where that is at
    most 3 x 3 cells. Returns the count kept (as ``knn``), -1 when a buffer overflowed, or -2
    when the box does not suit (fewer than k entries nearby, a pole, too wide): use ``knn``.
    ``q`` is the point (``set_query``); ``cells`` the batch's cell ranges (``_cell``)."""
    c = q[4]
    if a_first < 0.0:
        nb = bK.shape[0]
        nd = dK.shape[0]
        key = kn.morton_key(lat, lng)
        pb = kn.lower_bound(bK, 0, nb, key)
        pd = kn.lower_bound(dK, 0, nd, key)
        ne = _estimate(bF, bM, mask, True, max(0, pb - k), min(nb, pb + k), q, avail_only,
                       cls, min_ts, k, est, 0)
        ne = _estimate(dF, dM, mask, False, max(0, pd - k), min(nd, pd + k), q, avail_only,
                       cls, min_ts, k, est, ne)
        if ne < k:
            return -2
        a_first = est[k - 1] * 0.25 * (1.0 + kn.SLACK) + 1e-18
    a0 = min(kn.a_of_radius(radius), a_first)
    ang = 2.0 * math.asin(min(1.0, math.sqrt(a0))) * (1.0 + 1e-9) + 1e-12
    lat_lo = lat - ang / DEG2RAD
    lat_hi = lat + ang / DEG2RAD
    if lat_lo <= -90.0 or lat_hi >= 90.0:
        return -2
    s = math.sin(ang) / c
    if s >= 0.5:
        return -2
    dlng = (math.asin(s) * (1.0 + 1e-9) + 1e-12) / DEG2RAD
    dlat = ang / DEG2RAD
    # the deepest level whose cells are at least the box's half-sides: <= 3 x 3 cells, the
    # corners of which the bound usually rules out
    level = 0
    while level < kn.QT_LEVELS and 180.0 / (1 << (level + 1)) >= dlat \
            and 360.0 / (1 << (level + 1)) >= dlng:
        level += 1
    drop = kn.QT_LEVELS - level
    y0 = _y26(lat_lo) >> drop
    y1 = _y26(lat_hi) >> drop
    lo_lng = lng - dlng
    hi_lng = lng + dlng
    side = 1 << level
    # across the antimeridian the range of cell x wraps (taken mod side below)
    x0 = (_x26(lo_lng + 360.0) >> drop) - side if lo_lng < -180.0 else _x26(lo_lng) >> drop
    x1 = (_x26(hi_lng - 360.0) >> drop) + side if hi_lng > 180.0 else _x26(hi_lng) >> drop
    qx = _x26(lng) >> drop
    qy = _y26(lat) >> drop
    cnt = 0
    for pass_ in range(2):  # the query's own cell first: it tightens the bound
        for iy in range(y0, y1 + 1):
            for xx in range(x0, x1 + 1):
                ix = xx % side
                own = ix == qx and iy == qy
                if own != (pass_ == 0):
                    continue
                prefix = kn.spread_bits(ix) | (kn.spread_bits(iy) << 1)
                if not own:
                    bound = a0 if cnt < k else min(a0, ba[k - 1])
                    if box_lb(q, level, prefix) > bound * (1.0 + kn.SLACK) + 1e-18:
                        continue
                lo_b, hi_b, lo_d, hi_d = _cell(bK, dK, level, prefix, cells)
                cnt = _scan(bF, bM, mask, True, lo_b, hi_b, False, q, a0, avail_only, cls,
                            min_ts, k, ba, be, cnt)
                if cnt >= 0:
                    cnt = _scan(dF, dM, mask, False, lo_d, hi_d, True, q, a0, avail_only, cls,
                                min_ts, k, ba, be, cnt)
                if cnt < 0:
                    return -1
    return cnt


@njit(cache=True, inline="always")
def _nearest(bK, bF, bM, mask, dK, dF, dM, lat, lng, k, radius, avail_only, cls, min_ts, q,
             est, hlb, H, node, ba, bd, be, cells, a_first):  # type: ignore[no-untyped-def]
    """The k nearest of the point ``q`` (set for lat, lng) as ``_finish`` leaves them; a
    negative count when a fixed buffer overflowed."""
    cnt = grid_knn(bK, bF, bM, mask, dK, dF, dM, lat, lng, k, radius, avail_only, cls, min_ts,
                   q, est, ba, be, cells, a_first)
    if cnt == -2:
        cnt = knn(bK, bF, bM, mask, dK, dF, dM, k, radius, avail_only, cls, min_ts, q, hlb, H,
                  node, ba, bd, be)
    if cnt < 0:
        return cnt
    return _finish(bF, dF, q, k, radius, ba, bd, be, cnt)


@njit(cache=True)
def _scratch(k, n_cells):  # type: ignore[no-untyped-def]
    return (np.empty(6), np.empty(k), np.empty(HEAP), np.empty((HEAP, H_COLS), np.int64),
            np.empty(H_COLS, np.int64), np.empty(k + TIES), np.empty(k + TIES),
            np.empty(k + TIES, np.int64), np.full((n_cells, 5), -1, np.int64))


@njit(cache=True, inline="always")
def seed_bound(seed, q, k, a_kth):  # type: ignore[no-untyped-def]
    """A first bound for the point q from the previous query's k nearest (``seed``: their
    x, y, z; ``a_kth``: the term of the k-th, negative when it had fewer): they pass the same
    filters, so q's k-th nearest is no farther than the farthest of them. -1 (use the
    estimate) when that is more than ``SEED_SPAN`` times the previous k-th's term: a jump."""
    if a_kth < 0.0:
        return -1.0
    a = 0.0
    for r in range(k):
        dx = seed[r, 0] - q[0]
        dy = seed[r, 1] - q[1]
        dz = seed[r, 2] - q[2]
        a = max(a, (dx * dx + dy * dy + dz * dz) * 0.25)
    if a > SEED_SPAN * a_kth:
        return -1.0
    return a * (1.0 + kn.SLACK) + 1e-18


@njit(cache=True, inline="always")
def _set_seed(seed, bF, dF, be, k):  # type: ignore[no-untyped-def]
    """Keeps x, y, z of the k nearest found (entries ``be[:k]``) for ``seed_bound``."""
    for r in range(k):
        e = be[r]
        if e >= 0:
            F, j = bF, e
        else:
            F, j = dF, -1 - e
        seed[r, 0] = F[j, kn.F_X]
        seed[r, 1] = F[j, kn.F_Y]
        seed[r, 2] = F[j, kn.F_Z]


@njit(cache=True, inline="always")
def _put(e, bF, bM, dF, dM, t, r, f, i):  # type: ignore[no-untyped-def]
    """Writes entry e's lat, lng, ts into f[t, r, 1:4] and slot, class, available into
    i[t, r]."""
    if e >= 0:
        F, M, j = bF, bM, e
    else:
        F, M, j = dF, dM, -1 - e
    f[t, r, 1] = F[j, kn.F_LAT]
    f[t, r, 2] = F[j, kn.F_LNG]
    f[t, r, 3] = F[j, kn.F_TS]
    i[t, r, 0] = M[j, kn.M_SLOT]
    i[t, r, 1] = M[j, kn.M_CLS]
    i[t, r, 2] = M[j, kn.M_AVAIL]


@njit(cache=True, inline="always")
def _put_rows(bF, bM, dF, dM, k, bd, be, cnt, f, g, t):  # type: ignore[no-untyped-def]
    """Writes the cnt kept candidates into rows f[t], g[t] (distance first, then ``_put``) and
    pads them to k; returns 1 when two share a distance (the caller orders ties by id)."""
    tied = 0
    for r in range(cnt):
        if r > 0 and bd[r] == bd[r - 1]:
            tied = 1
        f[t, r, 0] = bd[r]
        _put(be[r], bF, bM, dF, dM, t, r, f, g)
    for r in range(cnt, k):
        f[t, r, 0] = np.inf
        f[t, r, 1] = np.nan
        f[t, r, 2] = np.nan
        f[t, r, 3] = np.nan
        g[t, r, 0] = -1
        g[t, r, 1] = 0
        g[t, r, 2] = 0
    return tied


@njit(cache=True, nogil=True, **NO_REFCOUNTS)
def _one(bK, bF, bM, mask, dK, dF, dM, lat, lng, k, radius, avail_only, cls, min_ts, out_f,
         out_i, q, est, hlb, H, node, ba, bd, be, cells):  # type: ignore[no-untyped-def]
    """``qt_nearest_into``'s search and rows (``out_f``, ``out_i`` with one leading row),
    in the caller's scratch."""
    set_query(q, lat, lng)
    cnt = _nearest(bK, bF, bM, mask, dK, dF, dM, lat, lng, k, radius, avail_only, cls, min_ts,
                   q, est, hlb, H, node, ba, bd, be, cells, -1.0)
    cap = out_f.shape[1]
    if cnt < 0 or cnt > cap:
        return 2 * (cap + 1)
    return 2 * cnt + _put_rows(bF, bM, dF, dM, cnt, bd, be, cnt, out_f, out_i, 0)


@njit(cache=True, nogil=True)
def qt_nearest_into(bK, bF, bM, mask, dK, dF, dM, lat, lng, k, radius, avail_only, cls,
                    min_ts, out_f, out_i):  # type: ignore[no-untyped-def]
    """One query written into the caller's rows: ``out_f[r]`` distance, lat, lng, ts and
    ``out_i[r]`` slot, class, available. Returns 2 * count + 1 when two rows share a distance
    (the caller orders ties by id), else 2 * count; a count larger than the rows means the
    search needs more room (ties): the caller asks the growing search."""
    q, est, hlb, H, node, ba, bd, be, cells = _scratch(k, 1)
    return _one(bK, bF, bM, mask, dK, dF, dM, lat, lng, k, radius, avail_only, cls, min_ts,
                out_f.reshape((1, out_f.shape[0], 4)), out_i.reshape((1, out_i.shape[0], 3)), q,
                est, hlb, H, node, ba, bd, be, cells)


@njit(cache=True, nogil=True, **NO_REFCOUNTS)
def _many(bK, bF, bM, mask, dK, dF, dM, lats, lngs, k, radius, avail_only, cls, min_ts, order,
          out_f, out_i, counts, redo, q, est, hlb, H, node, ba, bd, be, cells,
          seed):  # type: ignore[no-untyped-def]
    """``qt_nearest_many``'s searches, in Morton ``order``, into its rows, in the caller's
    scratch (``seed``: room for the k nearest's x, y, z)."""
    a_kth = -1.0
    for t in range(order.shape[0]):
        i = order[t]
        set_query(q, lats[i], lngs[i])
        cnt = _nearest(bK, bF, bM, mask, dK, dF, dM, lats[i], lngs[i], k, radius, avail_only,
                       cls, min_ts, q, est, hlb, H, node, ba, bd, be, cells,
                       seed_bound(seed, q, k, a_kth))
        a_kth = -1.0
        if cnt >= k:
            a_kth = ba[k - 1]
            _set_seed(seed, bF, dF, be, k)
        if cnt < 0 or cnt > k:
            redo[i] = 1
            cnt = 0
        counts[i] = cnt
        if _put_rows(bF, bM, dF, dM, k, bd, be, cnt, out_f, out_i, i):
            redo[i] = 1


@njit(cache=True, nogil=True)
def qt_nearest_many(bK, bF, bM, mask, dK, dF, dM, lats, lngs, k, radius, avail_only, cls,
                    min_ts):  # type: ignore[no-untyped-def]
    """k nearest of every query point, columnar, in query order: per query and rank, float
    rows distance, lat, lng, ts (n, k, 4) and int rows slot, class, available (n, k, 3), with
    distance inf and slot -1 past the query's count; counts (n,); and a flag per query the
    caller must redo (its k-th place is tied, so ids order it, or a fixed buffer overflowed)."""
    n = lats.shape[0]
    out_f = np.empty((n, k, 4))
    out_i = np.empty((n, k, 3), np.int64)
    counts = np.zeros(n, np.int64)
    redo = np.zeros(n, np.uint8)
    q, est, hlb, H, node, ba, bd, be, cells = _scratch(k, CELLS)
    order = np.argsort(kn.morton_keys(lats, lngs))  # neighbouring queries share cache lines
    _many(bK, bF, bM, mask, dK, dF, dM, lats, lngs, k, radius, avail_only, cls, min_ts, order,
          out_f, out_i, counts, redo, q, est, hlb, H, node, ba, bd, be, cells,
          np.empty((k, 3)))
    return out_f, out_i, counts, redo
