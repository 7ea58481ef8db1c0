"""Compiled loops of the writer: applying a batch of rows and publishing."""

from __future__ import annotations

import numpy as np
from numba import njit

from . import kernels as kn


@njit(cache=True, nogil=True)
def apply_rows(slots, valid, lats, lngs, tss, avails, clss, keys,
               lat, lng, ts, key, avail, cls, alive, dirty):  # type: ignore[no-untyped-def]
    """Writes valid rows in order (the last row of a driver wins).

    avails/clss hold -1 for "keep the driver's current value". Returns the slots that became
    dirty and the changes of the total and available counters.
    """
    newly = np.empty(slots.shape[0], np.int64)
    nn = 0
    d_total = 0
    d_avail = 0
    for r in range(slots.shape[0]):
        if not valid[r]:
            continue
        s = slots[r]
        was_alive = alive[s]
        was_avail = was_alive and avail[s]
        lat[s] = lats[r]
        lng[s] = lngs[r]
        ts[s] = tss[r]
        key[s] = keys[r]
        if avails[r] >= 0:
            avail[s] = avails[r]
        elif not was_alive:
            avail[s] = 1
        if clss[r] >= 0:
            cls[s] = clss[r]
        elif not was_alive:
            cls[s] = 0
        alive[s] = 1
        d_total += 0 if was_alive else 1
        d_avail += (1 if avail[s] else 0) - (1 if was_avail else 0)
        if not dirty[s]:
            dirty[s] = 1
            newly[nn] = s
            nn += 1
    return newly[:nn], d_total, d_avail


@njit(cache=True, nogil=True)
def mask_dirty(M, dirty):  # type: ignore[no-untyped-def]
    """Entries of a part whose driver is dirty (superseded by this publish)."""
    out = np.zeros(M.shape[0], np.uint8)
    for j in range(M.shape[0]):
        if dirty[M[j, kn.M_SLOT]]:
            out[j] = 1
    return out


@njit(cache=True, nogil=True)
def mask_base(mask, base_pos, slots):  # type: ignore[no-untyped-def]
    """A copy of the base mask with the base entries of these slots set."""
    out = mask.copy()
    for s in slots:
        if s < base_pos.shape[0]:
            j = base_pos[s]
            if j >= 0:
                out[j] = 1
    return out


@njit(cache=True, nogil=True)
def alive_slots(slots, alive):  # type: ignore[no-untyped-def]
    keep = np.empty(slots.shape[0], np.int64)
    n = 0
    for s in slots:
        if alive[s]:
            keep[n] = s
            n += 1
    return keep[:n]


build_part = kn.build_part
build_sorted_part = kn.build_sorted_part
merge_parts = kn.merge_parts
positions = kn.positions
stale_slots = kn.stale_slots
