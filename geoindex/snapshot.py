"""Immutable published snapshots: what readers query.

A snapshot is a *base* part (large, shared by every snapshot until the next compaction) with a
mask of base entries that are superseded, plus a small *delta* part of the drivers changed since
the base. Publishing copies the delta and the one-byte-per-entry mask, never the base.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from itertools import pairwise, repeat
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import kernels as kn
from .geo import check_k, check_latlng, check_latlng_arrays, check_number, check_radius
from .model import (
    FILTER_REASONS,
    CellCount,
    DriverPosition,
    NearestArrays,
    NearestExplain,
    Neighbor,
)

ALL = 1 << 62
TIE_ROOM = 8  # nearest() has room for this many ties with the k-th beyond k
_NO_LOG = np.zeros((0, 8), np.int64)


class Snapshot:
    """One published version of the index. Never changes; safe to share between threads."""

    def __init__(self, *, backend: Any, parts: tuple[Any, ...], base_pos: NDArray[np.int32],
                 ids: list[str], slot_of: dict[str, int], n_slots: int, classes: list[str],
                 class_codes: dict[str, int], clock: Callable[[], float], ttl_s: float,
                 version: int, published_at: float, publish_ms: float, total: int,
                 available: int, supply: tuple[int, list[str], NDArray[np.int64]] | None = None
                 ) -> None:
        self._backend = backend
        self._parts = parts  # bK, bF, bM, mask, dK, dF, dM
        self._base_pos = base_pos
        self._ids = ids
        self._slot_of = slot_of
        self._n_slots = n_slots
        self._classes = classes
        self._class_codes = class_codes
        self._clock = clock
        self._ttl = ttl_s
        self._no_log = backend.new_log(0)
        self._delta_pos: dict[int, int] | None = None
        self._into = backend.into_kernel
        self._supply = supply
        self.version = version
        self.published_at = published_at
        self.publish_ms = publish_ms
        self.total = total
        self.available = available

    def __len__(self) -> int:
        return self.total

    def __repr__(self) -> str:
        return (f"Snapshot(version={self.version}, backend={self._backend.name!r}, "
                f"total={self.total}, available={self.available})")

    @property
    def backend(self) -> str:
        return str(self._backend.name)

    @property
    def resolution(self) -> int:
        return int(self._backend.resolution)

    # --- queries ---------------------------------------------------------------------------

    def _filters(self, available_only: Any, vehicle_class: Any,
                 now: Any) -> tuple[bool, int | None, float]:
        if vehicle_class is None:
            cls: int | None = -1
        elif isinstance(vehicle_class, str):
            cls = self._class_codes.get(vehicle_class)
        else:
            raise ValueError(f"vehicle_class: must be a string or None, got {vehicle_class!r}")
        t = self._clock() if now is None else check_number(now, "now")
        return bool(available_only), cls, t - self._ttl

    def nearest(self, lat: float, lng: float, k: int = 10, radius_m: float = 5000.0, *,
                available_only: bool = True, vehicle_class: str | None = None,
                now: float | None = None) -> list[Neighbor]:
        """The k nearest drivers within radius_m passing the filters, by distance then id."""
        # fast path for the common call (plain floats in range; NaN fails the comparisons)
        if not (type(lat) is float and type(lng) is float and -90.0 <= lat <= 90.0
                and -180.0 <= lng <= 180.0):
            lat, lng = check_latlng(lat, lng)
        if type(k) is not int or k < 1:
            k = check_k(k)
        if type(radius_m) is not float or not 0.0 <= radius_m < math.inf:
            radius_m = check_radius(radius_m)
        cls: int | None
        if vehicle_class is None and now is None:
            avail_only, cls, min_ts = available_only is True, -1, self._clock() - self._ttl
            if available_only is not True:
                avail_only = bool(available_only)
        else:
            avail_only, cls, min_ts = self._filters(available_only, vehicle_class, now)
            if cls is None:
                return []
        cap = k + TIE_ROOM
        out_f = np.empty((cap, 4))
        out_i = np.empty((cap, 3), np.int64)
        got = self._into(*self._parts, lat, lng, k, radius_m, avail_only, cls, min_ts, out_f,
                         out_i)
        cnt = got >> 1
        if cnt > cap:  # more ties with the k-th than room for them: the growing search
            return self._exact(lat, lng, k, radius_m, avail_only, cls, min_ts)
        rows = self._rows(out_f[:cnt].T, out_i[:cnt].T)
        return _tie_sorted(rows, k) if got & 1 or cnt > k else rows

    def nearest_many(self, lats: Any, lngs: Any, k: int = 10, radius_m: float = 5000.0,
                     **filters: Any) -> list[list[Neighbor]]:
        """nearest() for many points at once; one list per query point."""
        return self.nearest_many_arrays(lats, lngs, k, radius_m, **filters).neighbors()

    def nearest_many_arrays(self, lats: Any, lngs: Any, k: int = 10, radius_m: float = 5000.0,
                            **filters: Any) -> NearestArrays:
        """nearest() for many points at once, as columns (`NearestArrays`): row i is exactly
        ``nearest(lats[i], lngs[i], k, radius_m, **filters)``. Filters: ``available_only``,
        ``vehicle_class`` and ``now``, as for nearest()."""
        la, ln = check_latlng_arrays(lats, lngs)
        k = check_k(k)
        radius = check_radius(radius_m)
        avail_only, cls, min_ts = self._filters(filters.pop("available_only", True),
                                                filters.pop("vehicle_class", None),
                                                filters.pop("now", None))
        if filters:
            raise ValueError(f"filters: unknown {sorted(filters)}")
        if cls is None:
            return NearestArrays(*_no_rows(la.shape[0], k), self._ids, self._classes)
        rows_f, rows_i, counts, redo = self._backend.nearest_many(
            self._parts, la, ln, k, radius, avail_only, cls, min_ts)
        out = NearestArrays(rows_f, rows_i, counts, self._ids, self._classes)
        for i in np.flatnonzero(redo).tolist():  # tied at the k-th place: ordered by id
            self._put_row(out, i, self._exact(la[i], ln[i], k, radius, avail_only, cls, min_ts))
        return out

    def _exact(self, lat: float, lng: float, k: int, radius: float, avail_only: bool, cls: int,
               min_ts: float) -> list[Neighbor]:
        f, i, _ = self._backend.search(self._parts, float(lat), float(lng), k, radius,
                                       avail_only, cls, min_ts, False, self._no_log)
        return self._neighbors(f.T, i.T, k)

    def _put_row(self, out: NearestArrays, i: int, rows: list[Neighbor]) -> None:
        out.count[i] = m = len(rows)
        for r, n in enumerate(rows):
            out.distance_m[i, r], out.lat[i, r], out.lng[i, r] = n.distance_m, n.lat, n.lng
            out.ts[i, r], out.index[i, r] = n.ts, self._slot_of[n.driver_id]
            out.class_code[i, r] = self._class_codes[n.vehicle_class]
            out.available[i, r] = n.available
        _pad(out, i, m)

    def within(self, lat: float, lng: float, radius_m: float, *,
               available_only: bool = True, vehicle_class: str | None = None,
               now: float | None = None) -> list[Neighbor]:
        """Every driver within radius_m passing the filters, by distance then id."""
        lat, lng = check_latlng(lat, lng)
        radius = check_radius(radius_m)
        avail_only, cls, min_ts = self._filters(available_only, vehicle_class, now)
        if cls is None:
            return []
        out_f, out_i, _ = self._backend.search(self._parts, lat, lng, ALL, radius, avail_only,
                                               cls, min_ts, True, self._no_log)
        return self._neighbors(out_f.T, out_i.T, ALL)

    def _rows(self, col_f: NDArray[np.float64], col_i: NDArray[np.int64]) -> list[Neighbor]:
        """Neighbours from columns: distance, lat, lng, ts and slot, class, available."""
        # built column-wise and zipped in C: no Python frame per neighbour
        ids = self._ids
        names = self._classes
        d, la, ln, ts = col_f.tolist()
        slots, cls, av = col_i.tolist()
        return list(map(tuple.__new__, repeat(Neighbor),
                        zip([ids[i] for i in slots], d, la, ln, [names[c] for c in cls],
                            [a == 1 for a in av], ts, strict=False)))

    def _neighbors(self, col_f: NDArray[np.float64], col_i: NDArray[np.int64],
                   k: int) -> list[Neighbor]:
        rows = self._rows(col_f, col_i)
        if len(rows) > k or _has_ties(rows):
            return _tie_sorted(rows, k)
        return rows

    def explain_nearest(self, lat: float, lng: float, k: int = 10, radius_m: float = 5000.0, *,
                        available_only: bool = True, vehicle_class: str | None = None,
                        now: float | None = None) -> NearestExplain:
        """nearest() plus what was searched and why drivers seen there were left out."""
        lat, lng = check_latlng(lat, lng)
        k = check_k(k)
        radius = check_radius(radius_m)
        avail_only, cls, min_ts = self._filters(available_only, vehicle_class, now)
        log = self._backend.new_log()
        out_f, out_i, stats = self._backend.search(self._parts, lat, lng, k, radius, avail_only,
                                                   -1 if cls is None else cls, min_ts, False,
                                                   log, explain=True)
        neighbors = [] if cls is None else self._neighbors(out_f.T, out_i.T, k)
        labels, span, rings = self._backend.log_cells(log[: int(stats[2])], lat, lng)
        if self._backend.name == "quadtree":
            rings = int(stats[1])  # quadtree nodes visited
        chosen = {n.driver_id for n in neighbors}
        bK, bF, bM, mask, dK, dF, dM = self._parts
        slots, why = kn.explain_reasons(bF, bM, mask, dF, dM, span, lat, lng, radius,
                                        avail_only, -2 if cls is None else cls, min_ts)
        # Grouped by reason code (the last, "none", is outranked), each group in scan order.
        order = np.argsort(why, kind="stable")
        grouped = slots[order].tolist()
        edges = np.searchsorted(why[order], np.arange(len(FILTER_REASONS) + 2)).tolist()
        name = self._ids.__getitem__
        buckets = [[d for d in map(name, grouped[lo:hi]) if d not in chosen]
                   for lo, hi in pairwise(edges)]
        ids_out = dict(zip(FILTER_REASONS, buckets, strict=False))
        counts = {r: len(found) for r, found in ids_out.items()}
        outranked = buckets[-1]
        return NearestExplain(neighbors=neighbors, backend=self.backend, rings_searched=rings,
                              cells_searched=labels, candidates_examined=int(stats[0]),
                              filtered_counts=counts, filtered_ids=ids_out, outranked=outranked)

    # --- lookups for dispatch and the map ------------------------------------------------

    def get(self, driver_id: str, *, now: float | None = None) -> DriverPosition | None:
        """The driver's published position, or None if absent, removed or stale."""
        if not isinstance(driver_id, str) or not driver_id:
            raise ValueError(f"driver_id: must be a non-empty string, got {driver_id!r}")
        slot = self._slot_of.get(driver_id)
        if slot is None or slot >= self._n_slots:
            return None
        bK, bF, bM, mask, dK, dF, dM = self._parts
        if self._delta_pos is None:
            self._delta_pos = {s: j for j, s in enumerate(dM[:, kn.M_SLOT].tolist())}
        j = self._delta_pos.get(slot)
        if j is not None:
            F, M = dF, dM
        else:
            if slot >= self._base_pos.shape[0]:
                return None
            j = int(self._base_pos[slot])
            if j < 0 or mask[j]:
                return None
            F, M = bF, bM
        t = self._clock() if now is None else check_number(now, "now")
        if F[j, kn.F_TS] < t - self._ttl:
            return None
        return DriverPosition(driver_id, float(F[j, kn.F_LAT]), float(F[j, kn.F_LNG]),
                              bool(M[j, kn.M_AVAIL]), self._classes[int(M[j, kn.M_CLS])],
                              float(F[j, kn.F_TS]))

    def _live(self, now: float | None) -> list[tuple[Any, Any, Any]]:
        t = self._clock() if now is None else check_number(now, "now")
        bK, bF, bM, mask, dK, dF, dM = self._parts
        out = []
        for K, F, M, m, use in ((bK, bF, bM, mask, True), (dK, dF, dM, mask, False)):
            keep = kn.live_mask(K.shape[0], m, use, F, M, t - self._ttl, False, -1)
            out.append((K[keep], F[keep], M[keep]))
        return out

    def cells(self, resolution: int | None = None, *,
              now: float | None = None) -> list[CellCount]:
        """Driver counts per cell at the index's resolution or a coarser one."""
        res = self._backend.resolution if resolution is None else resolution
        if isinstance(res, bool) or not isinstance(res, (int, np.integer)):
            raise ValueError(f"resolution: must be an integer, got {res!r}")
        live = self._live(now)
        keys = np.concatenate([p[0] for p in live])
        avail = np.concatenate([p[2][:, kn.M_AVAIL] for p in live]).astype(bool)
        return [CellCount(*c) for c in self._backend.cell_counts(keys, avail, int(res))]

    def available_per_cell(self, resolution: int) -> dict[str, int] | None:
        """Available drivers per H3 cell (its string id) as counted at this snapshot's publish,
        cells with none left out; None unless the writer keeps them at this resolution
        (`GeoIndex.keep_supply`)."""
        if self._supply is None or self._supply[0] != resolution:
            return None
        _res, cells, counts = self._supply
        return {cells[c]: n for c, n in enumerate(counts.tolist()) if n}

    def drivers(self, bbox: tuple[float, float, float, float] | None = None, *,
                now: float | None = None) -> Iterator[DriverPosition]:
        """Live drivers, optionally inside (min_lng, min_lat, max_lng, max_lat).

        A bbox with min_lng > max_lng crosses the antimeridian.
        """
        if bbox is not None:
            if len(bbox) != 4:
                raise ValueError("bbox: expected (min_lng, min_lat, max_lng, max_lat)")
            lo_lng, lo_lat = check_latlng(check_number(bbox[1], "bbox"), bbox[0])[::-1]
            hi_lng, hi_lat = check_latlng(check_number(bbox[3], "bbox"), bbox[2])[::-1]
            if lo_lat > hi_lat:
                raise ValueError("bbox: min_lat > max_lat")
        for _K, F, M in self._live(now):
            if bbox is not None:
                la, ln = F[:, kn.F_LAT], F[:, kn.F_LNG]
                keep = (la >= lo_lat) & (la <= hi_lat)
                if lo_lng <= hi_lng:
                    keep &= (ln >= lo_lng) & (ln <= hi_lng)
                else:
                    keep &= (ln >= lo_lng) | (ln <= hi_lng)
                F, M = F[keep], M[keep]
            for f, m in zip(F.tolist(), M.tolist(), strict=False):
                yield DriverPosition(self._ids[m[0]], f[3], f[4], m[1] == 1, self._classes[m[2]],
                                     f[5])


def _no_rows(n: int, k: int) -> tuple[Any, Any, Any]:
    rows_f = np.empty((n, k, 4))
    rows_i = np.empty((n, k, 3), np.int64)
    out = (rows_f, rows_i, np.zeros(n, np.int64))
    rows_f[:, :, 0] = np.inf
    rows_f[:, :, 1:] = np.nan
    rows_i[:, :, 0] = -1
    rows_i[:, :, 1:] = 0
    return out


def _pad(out: NearestArrays, i: int, m: int) -> None:
    out.distance_m[i, m:] = np.inf
    out.lat[i, m:] = out.lng[i, m:] = out.ts[i, m:] = np.nan
    out.index[i, m:] = -1
    out.class_code[i, m:] = out.available[i, m:] = 0


def _has_ties(rows: list[Neighbor]) -> bool:
    return any(a[1] == b[1] for a, b in zip(rows, rows[1:], strict=False))


def _tie_sorted(rows: list[Neighbor], k: int) -> list[Neighbor]:
    rows.sort(key=lambda n: (n.distance_m, n.driver_id))
    return rows[:k]


__all__ = ["Snapshot"]
