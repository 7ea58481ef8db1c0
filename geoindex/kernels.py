"""Compiled (numba) hot loops shared by both backends.

A snapshot part is three arrays sorted by cell key: ``K`` (int64 keys), ``F`` (float64 rows
x, y, z, lat, lng, ts) and ``M`` (int32 rows slot, available, class code). Candidate distances
are filtered cheaply on the 3-D chord, then computed with exactly the haversine formula of
:func:`geoindex.geo.haversine_m`. Candidates are ranked by the haversine term ``a``, which is
monotone in the distance.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

R2 = 2.0 * 6_371_008.8
SLACK = 1e-9  # relative slack on bounds: a bound may only let extra candidates through
F_X, F_Y, F_Z, F_LAT, F_LNG, F_TS = range(6)
M_SLOT, M_AVAIL, M_CLS = range(3)
QT_LEVELS = 26  # quadtree keys: 26 bits of longitude and 26 of latitude, interleaved
QT_LEAF = 24  # a quadtree node is scanned, not split, once it holds at most this many entries


@njit(cache=True)
def hav_a(p1: float, cp1: float, lng1: float, lat2: float, lng2: float) -> float:
    p2 = math.radians(lat2)
    s_phi = math.sin((p2 - p1) * 0.5)
    s_lam = math.sin(math.radians(lng2 - lng1) * 0.5)
    return s_phi * s_phi + cp1 * math.cos(p2) * s_lam * s_lam


@njit(cache=True)
def new_buffer(k: int, append_mode: bool):  # type: ignore[no-untyped-def]
    cap = 64 if append_mode else k + 8
    return np.empty(cap), np.empty(cap), np.empty(cap, np.int64)


@njit(cache=True)
def current_bound(ba, cnt, k, a_rad, append_mode):  # type: ignore[no-untyped-def]
    if append_mode or cnt < k:
        return a_rad
    return min(a_rad, ba[k - 1])


@njit(cache=True)
def push(ba, bd, be, cnt, k, a, d, e, append_mode):  # type: ignore[no-untyped-def]
    """Insert a candidate; keeps the k best by ``a`` plus any ties with the k-th's distance
    (two terms ``a`` a rounding apart can give one distance in metres: a tie for the caller,
    who orders ties by id)."""
    if cnt == ba.shape[0]:
        na = np.empty(cnt * 2)
        nd = np.empty(cnt * 2)
        ne = np.empty(cnt * 2, np.int64)
        na[:cnt] = ba[:cnt]
        nd[:cnt] = bd[:cnt]
        ne[:cnt] = be[:cnt]
        ba, bd, be = na, nd, ne
    if append_mode:
        ba[cnt] = a
        bd[cnt] = d
        be[cnt] = e
        return ba, bd, be, cnt + 1
    i = cnt
    while i > 0 and ba[i - 1] > a:
        ba[i] = ba[i - 1]
        bd[i] = bd[i - 1]
        be[i] = be[i - 1]
        i -= 1
    ba[i] = a
    bd[i] = d
    be[i] = e
    cnt += 1
    if cnt > k:
        kth = bd[k - 1]
        while cnt > k and bd[cnt - 1] > kth:
            cnt -= 1
    return ba, bd, be, cnt


@njit(cache=True, nogil=True)
def scan(F, M, mask, use_mask, lo, hi, delta, q, radius, a_rad, avail_only, cls, min_ts,
         k, ba, bd, be, cnt, append_mode):  # type: ignore[no-untyped-def]
    """Examine entries [lo, hi) of one part; returns the buffer, count and entries examined.

    ``q`` holds x, y, z, radians(lat), cos(radians(lat)), lng of the query point.
    """
    examined = 0
    for j in range(lo, hi):
        if use_mask and mask[j]:
            continue
        examined += 1
        if avail_only and M[j, M_AVAIL] == 0:
            continue
        if cls >= 0 and M[j, M_CLS] != cls:
            continue
        if F[j, F_TS] < min_ts:
            continue
        bound = current_bound(ba, cnt, k, a_rad, append_mode)
        dx = F[j, F_X] - q[0]
        dy = F[j, F_Y] - q[1]
        dz = F[j, F_Z] - q[2]
        if (dx * dx + dy * dy + dz * dz) * 0.25 > bound * (1.0 + SLACK) + 1e-18:
            continue
        a = hav_a(q[3], q[4], q[5], F[j, F_LAT], F[j, F_LNG])
        d = R2 * math.asin(math.sqrt(min(1.0, a)))
        if d > radius or (not append_mode and cnt >= k and d > bd[k - 1]):
            continue
        e = -1 - j if delta else j
        ba, bd, be, cnt = push(ba, bd, be, cnt, k, a, d, e, append_mode)
    return ba, bd, be, cnt, examined


@njit(cache=True)
def query_point(lat: float, lng: float):  # type: ignore[no-untyped-def]
    q = np.empty(6)
    p = math.radians(lat)
    lam = math.radians(lng)
    c = math.cos(p)
    q[0] = c * math.cos(lam)
    q[1] = c * math.sin(lam)
    q[2] = math.sin(p)
    q[3] = p
    q[4] = c
    q[5] = lng
    return q


@njit(cache=True)
def a_of_radius(radius: float) -> float:
    half = radius / R2
    if half >= math.pi / 2:
        return 1.0
    s = math.sin(half)
    return s * s


@njit(cache=True)
def finish(ba, bd, be, cnt, k, append_mode, bF, bM, dF, dM):  # type: ignore[no-untyped-def]
    """Result rows: float (distance, lat, lng, ts) and int (slot, class, available)."""
    order = np.argsort(ba[:cnt], kind="mergesort") if append_mode else np.arange(cnt)
    out_f = np.empty((cnt, 4))
    out_i = np.empty((cnt, 3), np.int64)
    for r in range(cnt):
        i = order[r]
        e = be[i]
        out_f[r, 0] = bd[i]
        if e >= 0:
            F, M, j = bF, bM, e
        else:
            F, M, j = dF, dM, -1 - e
        out_f[r, 1] = F[j, F_LAT]
        out_f[r, 2] = F[j, F_LNG]
        out_f[r, 3] = F[j, F_TS]
        out_i[r, 0] = M[j, M_SLOT]
        out_i[r, 1] = M[j, M_CLS]
        out_i[r, 2] = M[j, M_AVAIL]
    return out_f, out_i


@njit(cache=True)
def lower_bound(K, lo: int, hi: int, key: int) -> int:
    while lo < hi:
        mid = (lo + hi) >> 1
        if K[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


REASON_CLASS, REASON_UNAVAILABLE, REASON_STALE, REASON_TOO_FAR, REASON_NONE = range(5)


@njit(cache=True, inline="always")
def _reason(F, M, j, p1, c1, lng, radius, avail_only, cls, min_ts):  # type: ignore
    if cls < -1 or (cls >= 0 and M[j, M_CLS] != cls):
        return REASON_CLASS
    if avail_only and M[j, M_AVAIL] == 0:
        return REASON_UNAVAILABLE
    if F[j, F_TS] < min_ts:
        return REASON_STALE
    a = hav_a(p1, c1, lng, F[j, F_LAT], F[j, F_LNG])
    if R2 * math.asin(math.sqrt(min(1.0, a))) > radius:
        return REASON_TOO_FAR
    return REASON_NONE


@njit(cache=True)
def explain_reasons(bF, bM, mask, dF, dM, ranges, lat, lng, radius, avail_only, cls,
                    min_ts):  # type: ignore[no-untyped-def]
    """Slot and reason code of every live entry in the ranges (lo_base, hi_base, lo_delta,
    hi_delta), in order: the first filter it fails (class, unavailable, stale, too far; cls
    < -1 means an unknown class), else none."""
    n = 0
    for r in range(ranges.shape[0]):
        n += ranges[r, 1] - ranges[r, 0] + ranges[r, 3] - ranges[r, 2]
    slots = np.empty(n, np.int64)
    why = np.empty(n, np.int8)
    p1 = math.radians(lat)
    c1 = math.cos(p1)
    m = 0
    for r in range(ranges.shape[0]):
        for j in range(ranges[r, 0], ranges[r, 1]):
            if mask[j]:
                continue
            slots[m] = bM[j, M_SLOT]
            why[m] = _reason(bF, bM, j, p1, c1, lng, radius, avail_only, cls, min_ts)
            m += 1
        for j in range(ranges[r, 2], ranges[r, 3]):
            slots[m] = dM[j, M_SLOT]
            why[m] = _reason(dF, dM, j, p1, c1, lng, radius, avail_only, cls, min_ts)
            m += 1
    return slots[:m], why[:m]


# --- building snapshot parts ------------------------------------------------------------


@njit(cache=True, nogil=True)
def build_part(slots, key, lat, lng, ts, avail, cls):  # type: ignore[no-untyped-def]
    """A part holding the given writer slots, sorted by key."""
    n = slots.shape[0]
    ks = np.empty(n, np.int64)
    for i in range(n):
        ks[i] = key[slots[i]]
    return build_sorted_part(slots[np.argsort(ks, kind="mergesort")], key, lat, lng, ts, avail,
                             cls)


@njit(cache=True, nogil=True)
def build_sorted_part(slots, key, lat, lng, ts, avail, cls):  # type: ignore[no-untyped-def]
    """A part holding the given writer slots, already in key order."""
    n = slots.shape[0]
    K = np.empty(n, np.int64)
    F = np.empty((n, 6))
    M = np.empty((n, 3), np.int32)
    for i in range(n):
        s = slots[i]
        K[i] = key[s]
        la = lat[s]
        ln = lng[s]
        p = math.radians(la)
        lam = math.radians(ln)
        c = math.cos(p)
        F[i, F_X] = c * math.cos(lam)
        F[i, F_Y] = c * math.sin(lam)
        F[i, F_Z] = math.sin(p)
        F[i, F_LAT] = la
        F[i, F_LNG] = ln
        F[i, F_TS] = ts[s]
        M[i, M_SLOT] = s
        M[i, M_AVAIL] = avail[s]
        M[i, M_CLS] = cls[s]
    return K, F, M


@njit(cache=True, nogil=True)
def merge_parts(K1, F1, M1, mask, K2, F2, M2):  # type: ignore[no-untyped-def]
    """Compaction: the unmasked entries of part 1 merged with part 2, sorted by key."""
    n1 = 0
    for i in range(K1.shape[0]):
        if not mask[i]:
            n1 += 1
    n = n1 + K2.shape[0]
    K = np.empty(n, np.int64)
    F = np.empty((n, 6))
    M = np.empty((n, 3), np.int32)
    i = 0
    j = 0
    o = 0
    n2 = K2.shape[0]
    while o < n:
        while i < K1.shape[0] and mask[i]:
            i += 1
        if j >= n2 or (i < K1.shape[0] and K1[i] <= K2[j]):
            K[o] = K1[i]
            F[o] = F1[i]
            M[o] = M1[i]
            i += 1
        else:
            K[o] = K2[j]
            F[o] = F2[j]
            M[o] = M2[j]
            j += 1
        o += 1
    return K, F, M


@njit(cache=True, nogil=True)
def positions(M, n_slots: int):  # type: ignore[no-untyped-def]
    """slot -> entry index (-1 when absent)."""
    pos = np.full(n_slots, -1, np.int32)
    for i in range(M.shape[0]):
        pos[M[i, M_SLOT]] = i
    return pos


@njit(cache=True, nogil=True)
def stale_slots(ts, alive, n: int, min_ts: float):  # type: ignore[no-untyped-def]
    cnt = 0
    for i in range(n):
        if alive[i] and ts[i] < min_ts:
            cnt += 1
    out = np.empty(cnt, np.int64)
    cnt = 0
    for i in range(n):
        if alive[i] and ts[i] < min_ts:
            out[cnt] = i
            cnt += 1
    return out


@njit(cache=True)
def live_mask(n: int, mask, use_mask, F, M, min_ts, avail_only, cls):  # type: ignore[no-untyped-def]
    out = np.zeros(n, np.bool_)
    for j in range(n):
        if use_mask and mask[j]:
            continue
        if F[j, F_TS] < min_ts:
            continue
        if avail_only and M[j, M_AVAIL] == 0:
            continue
        if cls >= 0 and M[j, M_CLS] != cls:
            continue
        out[j] = True
    return out


# --- quadtree keys ------------------------------------------------------------------------


@njit(cache=True)
def spread_bits(v: int) -> int:
    v &= 0xFFFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    v = (v | (v << 1)) & 0x5555555555555555
    return v


QT_SIDE = 1 << QT_LEVELS
QT_SX = QT_SIDE / 360.0
QT_SY = QT_SIDE / 180.0


@njit(cache=True)
def morton_key(lat: float, lng: float) -> int:
    ix = int((lng + 180.0) * QT_SX)
    iy = int((lat + 90.0) * QT_SY)
    ix = min(max(ix, 0), QT_SIDE - 1)
    iy = min(max(iy, 0), QT_SIDE - 1)
    return spread_bits(ix) | (spread_bits(iy) << 1)


@njit(cache=True)
def morton_keys(lat, lng):  # type: ignore[no-untyped-def]
    out = np.empty(lat.shape[0], np.int64)
    for i in range(lat.shape[0]):
        out[i] = morton_key(lat[i], lng[i])
    return out
