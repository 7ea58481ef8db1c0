"""A travel-time model learned from real trips (`ridehail eta fit`), loaded from a versioned file.

Two boosted tree ensembles (fitted with scikit-learn's HistGradientBoostingRegressor, then
flattened into arrays, so the API needs neither scikit-learn nor pickle to load them):

- pace: log(seconds per straight-line metre), so duration = pace x distance and a driver at the
  pickup is 0 s away;
- detour: log(road metres / straight-line metres), so road distance = detour x distance.

Both read the same features (`FEATURES`): the straight-line distance, the local hour of the
week (a public holiday of the model's calendar counts as a Sunday: traffic on one moves as on
a Sunday, 0.222 s/m against 0.229 on Sundays and 0.292 on other weekdays in the NYC sample),
the pickup and dropoff areas (H3 cells at `AREA_RESOLUTION`, each encoded by the mean pace
and detour of the training trips in it, shrunk toward the city's mean; a cell never seen gets the
city's mean), their coordinates and the bearing. The trees walk in a numba kernel: a batch of
ten candidates costs microseconds.

The file is a numpy `.npz` (loaded with `allow_pickle=False`: nothing in it executes) holding
the arrays and a JSON `meta` entry with `format`, `version`, the city's time zone, its
holidays (ISO dates), the area tables and how it was fitted. Another format or version is
refused with a `ModelFileError` that says which.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import h3
import numpy as np
from h3.api import basic_int as h3_int
from numba import njit
from numpy.typing import NDArray

from ridehail.kernel.geo import EARTH_RADIUS_M, haversine_m

FORMAT = "ridehail-eta"
FORMAT_VERSION = 2  # 2: holidays count as Sundays
AREA_RESOLUTION = 7  # H3 cells of ~5 km2: enough trips per cell in a few thousand
MIN_DISTANCE_M = 30.0  # the features' floor: GPS noise makes shorter straight lines meaningless
FEATURES = ("log_distance_m", "hour_of_week", "hour_of_day", "weekend",
            "pickup_area_pace", "dropoff_area_pace", "pickup_area_detour",
            "dropoff_area_detour", "pickup_lat", "pickup_lng", "dropoff_lat", "dropoff_lng",
            "bearing_sin", "bearing_cos")
# The NYC model fitted on the yellow-cab sample (`ridehail eta fit`), the default for NYC.
SHIPPED = {"nyc": Path(__file__).resolve().parent / "data" / "eta_nyc.npz"}
_TREE_ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")


class ModelFileError(ValueError):
    """A model file that cannot be used: missing, not a model, or of another format version."""


@dataclass(frozen=True)
class Trees:
    """A boosted ensemble as flat arrays: node i goes `left[i]` when x[feature[i]] <=
    threshold[i], else `right[i]`; a leaf has left = -1 and adds `value[i]`."""

    feature: NDArray[np.int32]
    threshold: NDArray[np.float64]
    left: NDArray[np.int32]
    right: NDArray[np.int32]
    value: NDArray[np.float64]
    roots: NDArray[np.int32]
    baseline: float

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty(x.shape[0])
        _walk(np.ascontiguousarray(x, dtype=np.float64), *self.arrays(), out)  # type: ignore[call-arg]
        return out

    def arrays(self) -> tuple[Any, ...]:
        """What `_walk_row` reads, in its order (`_lockstep`'s layout); computed once."""
        cached = self.__dict__.get("_walk_arrays")
        if cached is None:
            cached = _lockstep(self)
            object.__setattr__(self, "_walk_arrays", cached)
        return cached  # type: ignore[no-any-return]


LOCKSTEP = 4  # trees walked side by side


def _lockstep(t: Trees) -> tuple[Any, ...]:
    """(feature, threshold, child, value, roots, steps, baseline) for a walk without a branch:
    an inner node's children sit side by side, at `child` (x <= threshold) and `child + 1`; a
    leaf's `child` is its own index - 1 and its threshold NaN, so a step from it (NaN compares
    false) lands on itself. The trees go in groups of `LOCKSTEP`, the last one padded with
    leaves of value 0, and `steps` holds each group's greatest depth: a group's trees take that
    many steps side by side, their loads overlapping instead of waiting on one another."""
    left, right = t.left.tolist(), t.right.tolist()
    order: list[int] = []  # the file's node index of each new index; -1: a padding leaf
    child: list[int] = []
    roots: list[int] = []
    depth: list[int] = []
    for root in t.roots.tolist():
        roots.append(len(order))
        order.append(root)
        child.append(len(order) - 2)
        todo, deepest = [(roots[-1], 0)], 0
        while todo:
            new, level = todo.pop()
            deepest = max(deepest, level)
            old = order[new]
            if left[old] >= 0:
                child[new] = len(order)
                todo += [(len(order), level + 1), (len(order) + 1, level + 1)]
                order += [left[old], right[old]]
                child += [len(order) - 3, len(order) - 2]
        depth.append(deepest)
    while len(roots) % LOCKSTEP:
        roots.append(len(order))
        order.append(-1)
        child.append(len(order) - 2)
        depth.append(0)
    at = np.array(order, dtype=np.int64)
    inner = np.array(child) >= np.arange(len(order))
    pad = at < 0
    feature = np.where(inner, t.feature[at], 0).astype(np.int32)
    threshold = np.where(inner, t.threshold[at], np.nan).astype(np.float64)
    value = np.where(pad, 0.0, t.value[at]).astype(np.float64)
    steps = np.array(depth, dtype=np.int32).reshape(-1, LOCKSTEP).max(axis=1)
    return (feature, threshold, np.array(child, dtype=np.int32), value,
            np.array(roots, dtype=np.int32), steps, float(t.baseline))


@njit(cache=True, nogil=True)
def _walk(x, feature, threshold, child, value, roots, steps, baseline, out):  # type: ignore[no-untyped-def]
    for i in range(x.shape[0]):
        out[i] = _walk_row(x[i], feature, threshold, child, value, roots, steps, baseline)


@njit(cache=True, nogil=True)
def _walk_row(row, feature, threshold, child, value, roots, steps, baseline):  # type: ignore[no-untyped-def]
    """One row's sum over the ensemble (`_lockstep`'s layout): the one home of the walk. The
    sum adds the trees' leaves in the file's order, as a walk of one tree at a time would.
    Four trees a group: `LOCKSTEP`."""
    s = baseline
    for g in range(steps.shape[0]):
        a, b, c, d = roots[4 * g], roots[4 * g + 1], roots[4 * g + 2], roots[4 * g + 3]
        for _ in range(steps[g]):
            a = child[a] + (not row[feature[a]] <= threshold[a])
            b = child[b] + (not row[feature[b]] <= threshold[b])
            c = child[c] + (not row[feature[c]] <= threshold[c])
            d = child[d] + (not row[feature[d]] <= threshold[d])
        s += value[a]
        s += value[b]
        s += value[c]
        s += value[d]
    return s


@dataclass(frozen=True)
class AreaTable:
    """Per H3 cell: the encoded pace and detour, and the city's means for unseen cells."""

    pace: dict[str, float]
    detour: dict[str, float]
    mean_pace: float
    mean_detour: float
    # The same tables keyed by the cells' 64-bit numbers: encoding looks a row up without
    # building its cell's string (a third of a pickup ETA's cost on ten candidates).
    _pace_by_int: dict[int, float] = field(init=False, repr=False, compare=False)
    _detour_by_int: dict[int, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, table in (("_pace_by_int", self.pace), ("_detour_by_int", self.detour)):
            object.__setattr__(self, name, {h3.str_to_int(c): v for c, v in table.items()})

    def encode(self, lats: Sequence[float] | NDArray[np.float64],
               lngs: Sequence[float] | NDArray[np.float64]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        n = len(lats)
        if isinstance(lats, np.ndarray):
            lats, lngs = lats.tolist(), np.asarray(lngs).tolist()
        cells = list(map(_cell_number, lats, lngs))
        pace = np.fromiter(map(self._pace_by_int.get, cells, repeat(self.mean_pace, n)),
                           np.float64, n)
        detour = np.fromiter(map(self._detour_by_int.get, cells, repeat(self.mean_detour, n)),
                             np.float64, n)
        return pace, detour

    def encode_one(self, lat: float, lng: float) -> tuple[float, float]:
        """`encode` of one point, as plain floats."""
        cell = _cell_number(lat, lng)
        return (self._pace_by_int.get(cell, self.mean_pace),
                self._detour_by_int.get(cell, self.mean_detour))


def _cell(lat: float, lng: float) -> str:
    return h3.latlng_to_cell(lat, lng, AREA_RESOLUTION)  # type: ignore[no-any-return]


@lru_cache(maxsize=65536)  # a parked driver asks for the same cell again and again
def _cell_number(lat: float, lng: float) -> int:
    return h3_int.latlng_to_cell(lat, lng, AREA_RESOLUTION)  # type: ignore[no-any-return]


NO_HOLIDAYS = np.zeros(0, np.int64)


def holiday_days(dates: Sequence[str]) -> NDArray[np.int64]:
    """ISO dates as the sorted local day numbers (days since 1970-01-01) the kernels read."""
    epoch = date(1970, 1, 1)
    return np.array(sorted({(date.fromisoformat(d) - epoch).days for d in dates}), np.int64)


def features(plat: NDArray[np.float64], plng: NDArray[np.float64], dlat: NDArray[np.float64],
             dlng: NDArray[np.float64], local_s: NDArray[np.float64] | float,
             areas: AreaTable, holidays: NDArray[np.int64] = NO_HOLIDAYS
             ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The feature matrix (columns as `FEATURES`) and the straight-line metres, for the fit
    (predictions build their rows inside `_predict_rows`). `local_s`: local wall-clock time as
    seconds since 1970-01-01 (as the demand readers keep it); `holidays`: `holiday_days`."""
    n = len(plat)
    t = np.full(n, float(local_s)) if np.ndim(local_s) == 0 else \
        np.ascontiguousarray(np.broadcast_to(np.asarray(local_s, dtype=np.float64), (n,)))
    ppace, pdet = areas.encode(plat, plng)
    dpace, ddet = areas.encode(dlat, dlng)
    x = np.empty((n, len(FEATURES)))
    d = np.empty(n)
    _fill(plat, plng, dlat, dlng, t, ppace, dpace, pdet, ddet, EARTH_RADIUS_M,
          MIN_DISTANCE_M, holidays, x, d)
    return x, d


@njit(cache=True, nogil=True)
def _fill(plat, plng, dlat, dlng, t, ppace, dpace, pdet, ddet, radius, floor_m, holidays, x, d):  # type: ignore[no-untyped-def]
    """`features`' arithmetic, row by row (numpy's per-call cost dominates on ten rows)."""
    for i in range(len(plat)):
        d[i] = _row(plat[i], plng[i], dlat[i], dlng[i], t[i], ppace[i], dpace[i], pdet[i],
                    ddet[i], radius, floor_m, holidays, x[i])


@njit(cache=True, nogil=True)
def _row(plat, plng, dlat, dlng, t, ppace, dpace, pdet, ddet, radius, floor_m, holidays, x):  # type: ignore[no-untyped-def]
    """One row of `FEATURES` into x; returns its straight-line metres. The one home of the
    features' arithmetic: the fit's matrix and every prediction are built by it. A day in
    `holidays` (sorted day numbers) is a Sunday."""
    p1, p2 = math.radians(plat), math.radians(dlat)
    dl = math.radians(dlng - plng)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    d = 2 * radius * math.asin(math.sqrt(min(h, 1.0)))
    day = math.floor(t / 86400.0)
    hour = (t - day * 86400.0) / 3600.0
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    at = np.searchsorted(holidays, day)
    if at < holidays.shape[0] and holidays[at] == day:
        weekday = 6
    bearing = math.atan2(dl * math.cos(p1), p2 - p1)
    x[0] = math.log(max(d, floor_m))
    x[1] = weekday * 24 + hour
    x[2] = hour
    x[3] = 1.0 if weekday >= 5 else 0.0
    x[4] = ppace
    x[5] = dpace
    x[6] = pdet
    x[7] = ddet
    x[8] = plat
    x[9] = plng
    x[10] = dlat
    x[11] = dlng
    x[12] = math.sin(bearing)
    x[13] = math.cos(bearing)
    return d


@njit(cache=True, nogil=True)
def _predict_rows(plat, plng, dlat, dlng, t, ppace, dpace, pdet, ddet, radius, floor_m,  # type: ignore[no-untyped-def]
                  holidays, pace, detour, with_detour, seconds, metres):
    """Features and walks fused, row by row, into seconds and road metres (without
    `with_detour`, the straight line's). The dropoff's columns (dlat, dlng, dpace, ddet) and
    t may hold one value for every row: one pickup, many drivers."""
    x = np.empty(len(FEATURES))
    one_end = dlat.shape[0] == 1
    one_t = t.shape[0] == 1
    for i in range(plat.shape[0]):
        j = 0 if one_end else i
        d = _row(plat[i], plng[i], dlat[j], dlng[j], t[0 if one_t else i], ppace[i],
                 dpace[j], pdet[i], ddet[j], radius, floor_m, holidays, x)
        seconds[i] = math.exp(_walk_row(x, *pace)) * d
        metres[i] = math.exp(_walk_row(x, *detour)) * d if with_detour else d


@njit(cache=True, nogil=True)
def _travel_one(plat, plng, dlat, dlng, t, ppace, dpace, pdet, ddet, radius, floor_m,  # type: ignore[no-untyped-def]
                holidays, pace, detour):
    """`_predict_rows` of one drive, as (seconds, road metres): a moving car's next leg."""
    x = np.empty(len(FEATURES))
    d = _row(plat, plng, dlat, dlng, t, ppace, dpace, pdet, ddet, radius, floor_m, holidays, x)
    return math.exp(_walk_row(x, *pace)) * d, math.exp(_walk_row(x, *detour)) * d


def unlearnable(plat: float, plng: float, dlat: float | None, dlng: float | None,
                duration: float | None, distance_km: float | None) -> str | None:
    """Why a ride cannot teach travel times (the fit's refusals after the reader's, and the
    live correction's): no dropoff or duration, an implausible duration, speed or road distance
    (`simulator.eta_fit`'s docstring lists them); None when it can."""
    if dlat is None or dlng is None:
        return "no_dropoff"
    if duration is None:
        return "no_duration"
    if not 30 <= duration <= 4 * 3600:
        return "implausible_duration"
    d = haversine_m(plat, plng, dlat, dlng)
    if not 0.3 <= d / duration <= 30:
        return "implausible_speed"
    if distance_km and d > 500 and not 0.9 <= distance_km * 1000 / d <= 6:
        return "implausible_distance"
    return None


class LearnedEta:
    """An `EtaModel` (dispatch/eta.py) from a fitted file. Thread-safe: nothing mutates."""

    def __init__(self, pace: Trees, detour: Trees, areas: AreaTable, meta: dict[str, Any]
                 ) -> None:
        self.pace = pace
        self.detour = detour
        self.areas = areas
        self.meta = meta
        self.timezone = ZoneInfo(meta["timezone"])
        self.holidays = holiday_days(meta.get("holidays", []))
        self._pace, self._detour = pace.arrays(), detour.arrays()

    @property
    def residual_sigma(self) -> float:
        """Spread of log(actual / predicted duration) on the training trips."""
        return float(self.meta.get("residual_sigma", 0.0))

    def local_s(self, when: float) -> float:
        """Unix seconds (UTC) -> local wall-clock seconds, as the model's features read it."""
        return when + _utc_offset_s(self.meta["timezone"], int(when // 3600))

    def predict(self, plat: Sequence[float], plng: Sequence[float], dlat: Sequence[float],
                dlng: Sequence[float], local_s: NDArray[np.float64] | float,
                distance: bool = True) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(seconds, road metres) per row; `local_s` is local wall-clock time (one or per row).
        Without `distance` the metres are the straight line's (the detour trees are skipped).
        The dropoff may be one point for every row."""
        a, b = np.asarray(plat, dtype=np.float64), np.asarray(plng, dtype=np.float64)
        c, e = np.asarray(dlat, dtype=np.float64), np.asarray(dlng, dtype=np.float64)
        n = a.shape[0]
        t = np.asarray(local_s, dtype=np.float64).reshape(-1)
        if c.shape[0] not in (1, n) or e.shape != c.shape or t.shape[0] not in (1, n):
            raise ValueError("predict: the columns' lengths differ")
        ppace, pdet = self.areas.encode(a, b)
        dpace, ddet = self.areas.encode(c, e)
        seconds, metres = np.empty(n), np.empty(n)
        _predict_rows(a, b, c, e, t, ppace, dpace, pdet, ddet, EARTH_RADIUS_M, MIN_DISTANCE_M,
                      self.holidays, self._pace, self._detour, distance, seconds, metres)
        return seconds, metres

    def travel(self, from_lat: float, from_lng: float, to_lat: float, to_lng: float,
               when: float) -> tuple[float, float]:
        ppace, pdet = self.areas.encode_one(from_lat, from_lng)
        dpace, ddet = self.areas.encode_one(to_lat, to_lng)
        s, m = _travel_one(float(from_lat), float(from_lng), float(to_lat), float(to_lng),
                           self.local_s(when), ppace, dpace, pdet, ddet, EARTH_RADIUS_M,
                           MIN_DISTANCE_M, self.holidays, self._pace, self._detour)
        return s, m

    def pickup_etas(self, from_lats: Sequence[float], from_lngs: Sequence[float],
                    to_lat: float, to_lng: float, when: float) -> list[float]:
        if len(from_lats) == 0:
            return []
        s, _m = self.predict(from_lats, from_lngs, [to_lat], [to_lng], self.local_s(when),
                             distance=False)
        out: list[float] = s.tolist()
        return out


@lru_cache(maxsize=4096)
def _utc_offset_s(zone: str, hour: int) -> float:
    offset = datetime.fromtimestamp(hour * 3600, UTC).astimezone(ZoneInfo(zone)).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


# --- the file ----------------------------------------------------------------------------------

def save(path: str | os.PathLike[str], pace: Trees, detour: Trees, areas: AreaTable,
         meta: dict[str, Any]) -> None:
    header = {**meta, "format": FORMAT, "version": FORMAT_VERSION, "features": list(FEATURES),
              "area_resolution": AREA_RESOLUTION,
              "areas": {"pace": areas.pace, "detour": areas.detour,
                        "mean_pace": areas.mean_pace, "mean_detour": areas.mean_detour},
              "baselines": {"pace": pace.baseline, "detour": detour.baseline}}
    arrays: dict[str, Any] = {"meta": np.array(json.dumps(header, sort_keys=True))}
    for name, trees in (("pace", pace), ("detour", detour)):
        for column in _TREE_ARRAYS:
            arrays[f"{name}_{column}"] = getattr(trees, column)
    with open(path, "wb") as fh:  # np.savez_compressed adds no suffix to an open file
        np.savez_compressed(fh, **arrays)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's header, checked: format and version (cheap: the trees are not read)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = _meta(data, path)
    except FileNotFoundError:
        raise ModelFileError(f"ETA model file not found: {path}") from None
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ModelFileError(f"{path} is not an ETA model file (not an .npz archive of "
                             "arrays written by `ridehail eta fit`)") from None
    return meta


def _meta(data: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    if "meta" not in getattr(data, "files", ()):
        raise ModelFileError(f"{path} is not an ETA model file (no meta entry)")
    meta = json.loads(str(data["meta"]))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an ETA model file (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} is an ETA model of format version {meta.get('version')!r}; this ridehail "
            f"reads version {FORMAT_VERSION}: refit it with `ridehail eta fit`")
    if tuple(meta.get("features", ())) != FEATURES:
        raise ModelFileError(f"{path}: its features {meta.get('features')} are not this "
                             f"version's {list(FEATURES)}")
    try:
        ZoneInfo(meta.get("timezone", ""))
    except (ZoneInfoNotFoundError, ValueError):
        raise ModelFileError(f"{path}: unknown time zone {meta.get('timezone')!r}") from None
    days = meta.get("holidays", [])
    try:
        if not isinstance(days, list) or not all(isinstance(d, str) for d in days):
            raise ValueError
        holiday_days(days)
    except ValueError:
        raise ModelFileError(f"{path}: holidays must be a list of ISO dates, got "
                             f"{str(days)[:80]}") from None
    return meta


def load(path: str | os.PathLike[str]) -> LearnedEta:
    """The model in `path`; a `ModelFileError` naming the problem otherwise."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = _meta(data, path)
            trees = {name: Trees(
                feature=data[f"{name}_feature"].astype(np.int32),
                threshold=data[f"{name}_threshold"].astype(np.float64),
                left=data[f"{name}_left"].astype(np.int32),
                right=data[f"{name}_right"].astype(np.int32),
                value=data[f"{name}_value"].astype(np.float64),
                roots=data[f"{name}_roots"].astype(np.int32),
                baseline=float(meta["baselines"][name]),
            ) for name in ("pace", "detour")}
    except FileNotFoundError:
        raise ModelFileError(f"ETA model file not found: {path}") from None
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ModelFileError(f"{path} is not an ETA model file (not an .npz archive of "
                             "arrays written by `ridehail eta fit`)") from None
    for name, t in trees.items():
        n = len(t.value)
        inner = np.flatnonzero(t.left >= 0) if len(t.left) == n else np.array([], int)
        if not (len(t.feature) == len(t.threshold) == len(t.right) == n) or (
                n and (t.left.max() >= n or t.right.max() >= n or t.roots.max() >= n
                       or t.feature.max() >= len(FEATURES) or t.roots.min() < 0
                       or t.feature.min() < 0 or not np.isfinite(t.value).all()
                       or not math.isfinite(t.baseline)
                       # children follow their parent: a walk always ends at a leaf
                       or (t.left[inner] <= inner).any() or (t.right[inner] <= inner).any())):
            raise ModelFileError(f"{path}: the {name} trees are inconsistent")
    a = meta["areas"]
    areas = AreaTable({str(k): float(v) for k, v in a["pace"].items()},
                      {str(k): float(v) for k, v in a["detour"].items()},
                      float(a["mean_pace"]), float(a["mean_detour"]))
    if not all(math.isfinite(v) for v in (areas.mean_pace, areas.mean_detour)):
        raise ModelFileError(f"{path}: the area means are not finite")
    return LearnedEta(trees["pace"], trees["detour"], areas, meta)
