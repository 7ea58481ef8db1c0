"""Fitting the travel-time model (`dispatch.learned_eta`) on recorded trips: `ridehail eta fit`.

The trips come from the simulator's own readers (`simulator.demand.load_demand`: any of its four
formats, its dirty-row reasons). A trip the model cannot learn from is refused too, and counted,
for the first of these reasons (after the reader's):

- ``no_dropoff``: the format has no dropoff (Uber 2014 pickups);
- ``no_duration``: no recorded duration;
- ``implausible_duration``: under 30 s or over 4 h (a clock fault: many are a day off);
- ``implausible_speed``: a straight-line speed under 0.3 m/s or over 30 m/s;
- ``implausible_distance``: a recorded road distance under 0.9x or over 6x the straight line
  (over 500 m: shorter trips may loop round a block).

The model's calendar: the public holidays of a country (the `holidays` package; all four demand
formats are of US cities, so "US", the federal ones, by default) from the trips' first year to
ten years after their last, which the model treats as Sundays (dispatch/learned_eta.py).
On the shipped samples, fitted on the earlier 80% and tested on the later 20%: NYC's median
error 20.8% -> 20.1% and RMSLE 0.373 -> 0.366; Chicago's 21.0% -> 20.3%, RMSLE 0.358 ->
0.357.

scikit-learn and holidays are needed here only (the `eta` extra): the fitted trees are
flattened into the model file's arrays, and checked to predict exactly as scikit-learn does
before they are saved.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dispatch.learned_eta import (
    FEATURES,
    AreaTable,
    LearnedEta,
    Trees,
    _cell,
    features,
    holiday_days,
    save,
    unlearnable,
)

from .city import City, data_dir, load_city
from .demand import DemandError, detect_format, load_demand

FIT_REJECT_REASONS = ("no_dropoff", "no_duration", "implausible_duration", "implausible_speed",
                      "implausible_distance")
DEFAULT_CITY = {"nyc_yellow_2016": "nyc/boroughs.geojson",
                "nyc_green_2016": "nyc/boroughs.geojson", "uber_2014": "nyc/boroughs.geojson",
                "chicago_taxi": "chicago/neighbourhoods.geojson"}
AREA_PRIOR_TRIPS = 20.0  # an area's mean is shrunk toward the city's as if it had 20 more trips
DEFAULT_HOLIDAYS = "US"  # the formats' cities' country: its federal holidays
HOLIDAY_YEARS_AHEAD = 10  # the calendar a model file carries reaches this far past its trips
HGB_PARAMS: dict[str, Any] = {"max_iter": 120, "learning_rate": 0.1, "max_leaf_nodes": 15,
                              "min_samples_leaf": 30, "l2_regularization": 1.0,
                              "early_stopping": False, "random_state": 0}


_COLUMNS = ("plat", "plng", "dlat", "dlng", "local_s", "duration_s", "road_m", "line")


class FitError(ValueError):
    """Trips that cannot be fitted (none usable, mixed time zones, scikit-learn missing)."""


@dataclass
class TripTable:
    """The clean trips as columns, and every refused row counted by reason."""

    plat: NDArray[np.float64]
    plng: NDArray[np.float64]
    dlat: NDArray[np.float64]
    dlng: NDArray[np.float64]
    local_s: NDArray[np.float64]  # local wall-clock seconds since 1970-01-01
    duration_s: NDArray[np.float64]
    road_m: NDArray[np.float64]  # NaN: not recorded
    line: NDArray[np.float64]  # the row's line in its file (the header is line 1)
    timezone: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0

    def __len__(self) -> int:
        return len(self.duration_s)

    def take(self, idx: NDArray[np.int64]) -> TripTable:
        cols = {k: getattr(self, k)[idx] for k in _COLUMNS}
        return TripTable(**cols, timezone=self.timezone, sources=self.sources,
                         rejected=self.rejected, rows_read=self.rows_read)

    def time_split(self, test_share: float = 0.2) -> tuple[TripTable, TripTable]:
        """The earlier trips to train on, the later ones to test on."""
        order = np.argsort(self.local_s, kind="stable")
        cut = int(round(len(order) * (1 - test_share)))
        return self.take(order[:cut]), self.take(order[cut:])


def _format_of(path: Path) -> str:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except FileNotFoundError:
        raise DemandError(f"demand file not found: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DemandError(f"demand file {path} cannot be read: {exc}") from None
    if header is None:
        raise DemandError(f"demand file {path} is empty (no header line)")
    return detect_format(header).name


def read_trips(paths: Sequence[str | os.PathLike[str]], city: City | None = None,
               limit: int | None = None) -> TripTable:
    """Every clean trip of the files (the format of each detected from its header; at most
    `limit` rows read from each); without `city`, each file's format's default service area
    (NYC boroughs, Chicago)."""
    if not paths:
        raise FitError("no demand file given")
    cols: dict[str, list[float]] = {k: [] for k in _COLUMNS}
    rejected: dict[str, int] = {}
    zones: set[str] = set()
    sources, rows_read = [], 0
    for raw in paths:
        path = Path(raw)
        fmt_name = _format_of(path)
        area = city or load_city(data_dir() / DEFAULT_CITY[fmt_name])
        data = load_demand(path, area, limit=limit)
        zones.add(data.format.timezone)
        rows_read += data.rows_read
        for why, n in data.rejected.items():
            rejected[why] = rejected.get(why, 0) + n
        kept = 0
        for r in data.records:
            reason = unlearnable(r.pickup_lat, r.pickup_lng, r.dropoff_lat, r.dropoff_lng,
                                 r.duration_s, r.distance_km)
            if reason is not None:
                rejected[reason] = rejected.get(reason, 0) + 1
                continue
            assert r.dropoff_lat is not None and r.dropoff_lng is not None
            assert r.duration_s is not None
            kept += 1
            for k, v in (("plat", r.pickup_lat), ("plng", r.pickup_lng), ("dlat", r.dropoff_lat),
                         ("dlng", r.dropoff_lng), ("local_s", r.start_s),
                         ("duration_s", r.duration_s),
                         ("road_m", r.distance_km * 1000 if r.distance_km else math.nan),
                         ("line", r.row)):
                cols[k].append(v)
        sources.append({"file": path.name, "format": fmt_name, "rows_read": data.rows_read,
                        "trips_used": kept})
    if len(zones) > 1:
        raise FitError(f"the files record times in different time zones {sorted(zones)}: "
                       "fit one city at a time")
    for reason in FIT_REJECT_REASONS:
        rejected.setdefault(reason, 0)
    arrays = {k: np.array(v, dtype=np.float64) for k, v in cols.items()}
    return TripTable(**arrays, timezone=zones.pop(), sources=sources, rejected=rejected,
                     rows_read=rows_read)


# --- the fit -------------------------------------------------------------------------------------

def _area_table(trips: TripTable, pace: NDArray[np.float64], detour: NDArray[np.float64]
                ) -> AreaTable:
    """Each H3 cell's mean log pace and log detour over the trips that start or end in it,
    shrunk toward the city's mean (`AREA_PRIOR_TRIPS`)."""
    has_d = np.isfinite(detour)
    mean_p = float(pace.mean())
    mean_d = float(detour[has_d].mean()) if has_d.any() else 0.3
    sums: dict[str, list[float]] = {}
    for lat_c, lng_c in (("plat", "plng"), ("dlat", "dlng")):
        lats, lngs = getattr(trips, lat_c).tolist(), getattr(trips, lng_c).tolist()
        for i, (a, b) in enumerate(zip(lats, lngs, strict=True)):
            s = sums.setdefault(_cell(a, b), [0.0, 0.0, 0.0, 0.0])
            s[0] += pace[i]
            s[1] += 1
            if has_d[i]:
                s[2] += detour[i]
                s[3] += 1
    k = AREA_PRIOR_TRIPS
    return AreaTable(
        {c: round((s[0] + k * mean_p) / (s[1] + k), 6) for c, s in sums.items()},
        {c: round((s[2] + k * mean_d) / (s[3] + k), 6) for c, s in sums.items()},
        mean_p, mean_d)


def _targets(trips: TripTable) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    d = np.maximum(features(trips.plat, trips.plng, trips.dlat, trips.dlng, 0.0,
                            AreaTable({}, {}, 0.0, 0.0))[1], 1.0)
    pace = np.log(trips.duration_s / d)
    detour = np.log(np.clip(trips.road_m / d, 1.0, 6.0))  # NaN stays NaN
    return pace, detour


def _oof_features(trips: TripTable, pace: NDArray[np.float64], detour: NDArray[np.float64],
                  holidays: NDArray[np.int64], folds: int = 5) -> NDArray[np.float64]:
    """Training features whose area columns come from the other folds' trips: a trip's own
    duration must not leak into the encoding the trees learn from."""
    x = np.empty((len(trips), len(FEATURES)))
    fold = np.arange(len(trips)) % folds
    for f in range(folds):
        held = np.flatnonzero(fold == f)
        rest = np.flatnonzero(fold != f)
        table = _area_table(trips.take(rest), pace[rest], detour[rest])
        part = trips.take(held)
        x[held], _ = features(part.plat, part.plng, part.dlat, part.dlng, part.local_s, table,
                              holidays)
    return x


def _fit_trees(x: NDArray[np.float64], y: NDArray[np.float64]) -> Trees:
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise FitError("fitting needs scikit-learn: pip install 'ridehail[eta]'") from None
    # One thread: a few thousand trips fit in a second or two, and OpenMP's threads spin
    # badly on a busy machine (20x slower measured with 2 threads on 2 loaded cores).
    with threadpool_limits(1):
        hgb = HistGradientBoostingRegressor(**HGB_PARAMS).fit(x, y)
    trees = export_trees(hgb)
    probe = x[: min(len(x), 2000)]
    if not np.allclose(trees.predict(probe), hgb.predict(probe), rtol=0, atol=1e-9):
        raise FitError("the flattened trees do not predict as scikit-learn does "
                       "(an unsupported scikit-learn version?)")
    return trees


def export_trees(hgb: Any) -> Trees:
    """scikit-learn's fitted HistGradientBoostingRegressor as flat arrays (numeric splits only:
    the model has no categorical feature)."""
    feature, threshold, left, right, value, roots = [], [], [], [], [], []
    offset = 0
    for iteration in hgb._predictors:
        for predictor in iteration:
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise FitError("categorical splits are not supported")
            leaf = nodes["is_leaf"].astype(bool)
            roots.append(offset)
            feature.append(nodes["feature_idx"].astype(np.int32))
            threshold.append(nodes["num_threshold"].astype(np.float64))
            left.append(np.where(leaf, -1, nodes["left"].astype(np.int64) + offset))
            right.append(np.where(leaf, -1, nodes["right"].astype(np.int64) + offset))
            value.append(np.where(leaf, nodes["value"], 0.0))
            offset += len(nodes)
    return Trees(np.concatenate(feature).astype(np.int32), np.concatenate(threshold),
                 np.concatenate(left).astype(np.int32), np.concatenate(right).astype(np.int32),
                 np.concatenate(value), np.array(roots, dtype=np.int32),
                 float(np.ravel(hgb._baseline_prediction)[0]))


def holiday_calendar(country: str, trips: TripTable) -> list[str]:
    """The public holidays (ISO dates) of `country` ("CC" or "CC-SUBDIVISION", as the
    `holidays` package names them; "none": no calendar) over the trips' years and
    `HOLIDAY_YEARS_AHEAD` more."""
    if country.lower() == "none" or not len(trips):
        return []
    try:
        import holidays
    except ImportError:
        raise FitError("fitting needs holidays: pip install 'ridehail[eta]'") from None
    first, last = (int(time.gmtime(float(f(trips.local_s))).tm_year) for f in (np.min, np.max))
    code, _, subdiv = country.partition("-")
    try:
        days = holidays.country_holidays(code.upper(), subdiv=subdiv.upper() or None,
                                         years=range(first, last + HOLIDAY_YEARS_AHEAD + 1))
    except NotImplementedError as exc:
        raise FitError(f"holidays: no calendar for {country!r} ({exc})") from None
    return sorted(d.isoformat() for d in days)


def fit_model(trips: TripTable, country: str = DEFAULT_HOLIDAYS) -> LearnedEta:
    """The model fitted on every trip of `trips`, with `country`'s holidays as Sundays."""
    if len(trips) < 50:
        raise FitError(f"only {len(trips)} usable trips (refused: {trips.rejected}); "
                       "need at least 50")
    calendar = holiday_calendar(country, trips)
    days = holiday_days(calendar)
    pace, detour = _targets(trips)
    x = _oof_features(trips, pace, detour, days)
    pace_trees = _fit_trees(x, pace)
    has_d = np.isfinite(detour)
    if has_d.sum() >= 50:
        detour_trees = _fit_trees(x[has_d], detour[has_d])
    else:  # no recorded road distances: a constant detour (the straight line's 1.3)
        detour_trees = Trees(np.zeros(1, np.int32), np.zeros(1), np.full(1, -1, np.int32),
                             np.full(1, -1, np.int32), np.zeros(1), np.zeros(1, np.int32),
                             math.log(1.3))
    areas = _area_table(trips, pace, detour)
    residual = pace - pace_trees.predict(x)
    meta = {"timezone": trips.timezone, "holidays": calendar, "holiday_country": country,
            "trips": len(trips),
            "trips_with_distance": int(has_d.sum()), "sources": trips.sources,
            "rejected": trips.rejected, "residual_sigma": round(float(residual.std()), 4),
            "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "params": HGB_PARAMS}
    return LearnedEta(pace_trees, detour_trees, areas, meta)


def fit_and_save(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                 city: City | None = None, country: str = DEFAULT_HOLIDAYS) -> dict[str, Any]:
    """`ridehail eta fit`: read, fit, save; returns what was done (rows, refusals, file)."""
    trips = read_trips(paths, city)
    model = fit_model(trips, country)
    save(out, model.pace, model.detour, model.areas, model.meta)
    return {"out": str(out), "bytes": Path(out).stat().st_size, "timezone": trips.timezone,
            "rows_read": trips.rows_read, "trips_used": len(trips),
            "rejected": {k: v for k, v in trips.rejected.items() if v},
            "sources": trips.sources, "residual_sigma": model.meta["residual_sigma"],
            "holidays": f"{country}: {len(model.meta['holidays'])} days"}
