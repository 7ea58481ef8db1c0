"""Demand for the simulator: real trip records replayed in time, or synthetic hotspot demand.

Reading (`load_demand`): a CSV whose format is detected from its header (see `FORMATS`):

- ``nyc_yellow_2016`` NYC yellow cab 2016 (``tpepPickupDateTime``, ``startLat``, ``endLat``, ...);
- ``nyc_green_2016`` NYC green cab 2016 (``lpepPickupDatetime``, ``pickupLatitude``, ...);
- ``uber_2014`` Uber NYC pickups 2014 (``Date/Time,Lat,Lon,...``): pickups only, no dropoff;
- ``chicago_taxi`` Chicago taxi trips (``trip_start_timestamp``, ``pickup_latitude``, ...).

Times are the recorded local wall-clock times (Chicago's epoch stamps encode local time). Each row
is kept, or rejected for the first reason that applies, in this order, and counted (see
`REJECT_REASONS`):
``unparsable`` (bad number or time, wrong field count), ``missing_coords`` (empty coordinate),
``zero_coords`` (a coordinate exactly 0.0, the TLC sentinel for no GPS fix),
``dropoff_before_pickup`` (negative duration), ``zero_length`` (recorded duration 0 s, or pickup
and dropoff under 10 m apart with no recorded distance or a recorded distance of 0) and
``outside_city`` (pickup or dropoff outside the service area).

Replay (`replay`): the samples are sparse and spread over weeks, so rows are folded by time of day.
By default the whole 24 h day is compressed onto the simulated duration (t = time_of_day / 24 h *
duration), which keeps the daily shape (rush hours) in a short run; with ``window_start_s`` the rows
whose time of day falls in [start, start + duration) are replayed in real time instead (at most
24 h). In the default mode a duration over 24 h stretches the one day over it. To reach
``rate_per_hour`` every selected row is used ``target // n`` times plus a seeded random subset of
``target % n`` rows (or a random subset when downsampling); extra copies get a gaussian time jitter
(10 source minutes) and a gaussian spatial jitter (``jitter_m``, 150 m) on pickup and dropoff,
redrawn until inside the city. Without ``rate_per_hour`` every selected row is replayed once.

Synthetic dropoffs (Uber 2014 has none, and the hotspot generator): the straight-line trip length
is lognormal, fitted on the NYC yellow and green Jan 2016 samples (see `DEFAULT_TRIP_LENGTH`,
`fit_trip_length`), the bearing uniform, redrawn (shorter each round) until inside the city.

Synthetic demand (`hotspot_demand`): a homogeneous Poisson process whose pickups come from a
mixture of gaussians around hotspot centres inside the city plus a uniform background.

Everything random takes a seed and uses one `numpy.random.Generator`, so a seed gives the same
output. The Uber 2014 ``Weight`` column is not used.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ridehail.kernel.geo import haversine_m
from simulator.city import EARTH_RADIUS_KM, City

__all__ = [
    "DEFAULT_SYNTHETIC_RATE_PER_HOUR",
    "DEFAULT_TRIP_LENGTH",
    "FORMATS",
    "REJECT_REASONS",
    "DemandData",
    "DemandError",
    "DemandFormat",
    "DemandPlan",
    "DemandRecord",
    "Hotspot",
    "TripLengthModel",
    "TripRequest",
    "build_demand",
    "detect_format",
    "fit_trip_length",
    "hotspot_demand",
    "load_demand",
    "replay",
]

DAY_S = 86_400.0
MILE_KM = 1.609344
DEFAULT_SYNTHETIC_RATE_PER_HOUR = 600.0
REJECT_REASONS = (
    "unparsable",
    "missing_coords",
    "zero_coords",
    "dropoff_before_pickup",
    "zero_length",
    "outside_city",
)
_ZERO_LENGTH_M = 10.0
_MAX_REDRAWS = 24


class DemandError(ValueError):
    """A demand file that cannot be used at all (missing, not a CSV, unknown header, no rows)."""


@dataclass(frozen=True, slots=True)
class DemandRecord:
    """One accepted source row. `start_s`: local wall-clock time as seconds since 1970-01-01."""

    row: int  # line number in the file (the header is line 1)
    start_s: float
    pickup_lat: float
    pickup_lng: float
    dropoff_lat: float | None
    dropoff_lng: float | None
    distance_km: float | None
    duration_s: float | None

    @property
    def time_of_day_s(self) -> float:
        return self.start_s % DAY_S


@dataclass(frozen=True, slots=True)
class TripRequest:
    """A rider request to replay; `t_s` is seconds from the start of the simulation."""

    request_id: int
    t_s: float
    pickup_lat: float
    pickup_lng: float
    dropoff_lat: float
    dropoff_lng: float
    distance_km: float | None = None  # as recorded, when the source has it
    duration_s: float | None = None  # as recorded, when the source has it
    source_row: int | None = None  # None: synthetic
    dropoff_synthetic: bool = False
    jittered: bool = False

    @property
    def pickup(self) -> tuple[float, float]:
        return (self.pickup_lat, self.pickup_lng)

    @property
    def dropoff(self) -> tuple[float, float]:
        return (self.dropoff_lat, self.dropoff_lng)


@dataclass(frozen=True)
class DemandFormat:
    name: str
    description: str
    pickup_time: str
    pickup_lat: str
    pickup_lng: str
    parse_time: Callable[[str], float]
    dropoff_lat: str | None = None
    dropoff_lng: str | None = None
    dropoff_time: str | None = None
    duration_s: str | None = None
    distance_miles: str | None = None
    timezone: str = "America/New_York"  # the zone of the recorded wall-clock times

    @property
    def columns(self) -> tuple[str, ...]:
        cols = (
            self.pickup_time,
            self.pickup_lat,
            self.pickup_lng,
            self.dropoff_lat,
            self.dropoff_lng,
            self.dropoff_time,
            self.duration_s,
            self.distance_miles,
        )
        return tuple(c for c in cols if c is not None)


def _parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC).timestamp()


def _parse_us(text: str) -> float:
    # "4/5/2014 22:18" or "4/5/2014 22:18:07"
    date, _, clock = text.strip().partition(" ")
    month, day, year = (int(x) for x in date.split("/"))
    hms = [int(x) for x in clock.split(":")] + [0]
    if len(hms) not in (3, 4):
        raise ValueError(f"bad time {text!r}")
    return datetime(year, month, day, hms[0], hms[1], hms[2], tzinfo=UTC).timestamp()


def _parse_epoch(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"bad epoch {text!r}")
    return value


FORMATS: dict[str, DemandFormat] = {
    f.name: f
    for f in (
        DemandFormat(
            "nyc_yellow_2016",
            "NYC yellow cab trips 2016 (tpepPickupDateTime, startLat, ...)",
            "tpepPickupDateTime",
            "startLat",
            "startLon",
            _parse_iso,
            "endLat",
            "endLon",
            dropoff_time="tpepDropoffDateTime",
            distance_miles="tripDistance",
        ),
        DemandFormat(
            "nyc_green_2016",
            "NYC green cab trips 2016 (lpepPickupDatetime, pickupLatitude, ...)",
            "lpepPickupDatetime",
            "pickupLatitude",
            "pickupLongitude",
            _parse_iso,
            "dropoffLatitude",
            "dropoffLongitude",
            dropoff_time="lpepDropoffDatetime",
            distance_miles="tripDistance",
        ),
        DemandFormat(
            "uber_2014",
            "Uber NYC pickups 2014 (Date/Time, Lat, Lon, ...; no dropoff)",
            "Date/Time",
            "Lat",
            "Lon",
            _parse_us,
        ),
        DemandFormat(
            "chicago_taxi",
            "Chicago taxi trips (trip_start_timestamp, pickup_latitude, ...)",
            "trip_start_timestamp",
            "pickup_latitude",
            "pickup_longitude",
            _parse_epoch,
            "dropoff_latitude",
            "dropoff_longitude",
            duration_s="trip_seconds",
            distance_miles="trip_miles",
            timezone="America/Chicago",
        ),
    )
}


def detect_format(header: Sequence[str]) -> DemandFormat:
    """The known format whose columns all appear in `header`, else a `DemandError` listing them."""
    cols = {h.strip() for h in header}
    for fmt in FORMATS.values():
        if set(fmt.columns) <= cols:
            return fmt
    known = "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
    shown = ",".join(list(header)[:12])
    raise DemandError(f"unknown demand CSV header [{shown}]; known formats: {known}")


@dataclass
class DemandData:
    """What `load_demand` read: accepted records sorted by time and rejected rows by reason."""

    path: Path
    format: DemandFormat
    records: list[DemandRecord]
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))

    @property
    def rows_read(self) -> int:
        return len(self.records) + sum(self.rejected.values())


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def load_demand(
    path: str | os.PathLike[str], city: City, *, limit: int | None = None
) -> DemandData:
    """Read a demand CSV of a known format; dirty rows are rejected and counted, never kept."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise DemandError(f"demand file {p} is empty (no header line)") from None
            fmt = detect_format(header)
            index = {name.strip(): i for i, name in enumerate(header)}
            data = DemandData(p, fmt, [])
            rows: list[tuple[int, list[str]]] = []
            for fields in reader:
                if not fields:
                    continue  # blank line
                rows.append((reader.line_num, fields))
                if limit is not None and len(rows) >= limit:
                    break
    except FileNotFoundError:
        raise DemandError(f"demand file not found: {p}") from None
    except UnicodeDecodeError as exc:
        raise DemandError(f"demand file {p} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise DemandError(f"demand file {p} is not a readable CSV: {exc}") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise DemandError(f"demand file {p} cannot be read: {exc}") from None

    candidates: list[DemandRecord] = []
    for line, fields in rows:
        try:
            if len(fields) != len(header):
                raise _Reject("unparsable")
            candidates.append(_parse_row(fmt, index, fields, line))
        except _Reject as r:
            data.rejected[r.reason] += 1
    # The polygon test is the costly one: do it once, vectorised, on the otherwise clean rows.
    if candidates:
        plat = [r.pickup_lat for r in candidates]
        plng = [r.pickup_lng for r in candidates]
        inside = city.contains_many(plat, plng)
        dlat = [r.dropoff_lat if r.dropoff_lat is not None else r.pickup_lat for r in candidates]
        dlng = [r.dropoff_lng if r.dropoff_lng is not None else r.pickup_lng for r in candidates]
        inside &= city.contains_many(dlat, dlng)
        data.records = [r for r, ok in zip(candidates, inside, strict=True) if ok]
        data.rejected["outside_city"] += int((~inside).sum())
    data.records.sort(key=lambda r: (r.start_s, r.row))
    return data


def _number(fields: list[str], index: dict[str, int], col: str, missing: str) -> float | None:
    text = fields[index[col]].strip()
    if not text:
        if missing == "none":
            return None
        raise _Reject(missing)
    try:
        value = float(text)
    except ValueError:
        raise _Reject("unparsable") from None
    if not math.isfinite(value):
        raise _Reject("unparsable")
    return value


def _parse_row(
    fmt: DemandFormat, index: dict[str, int], fields: list[str], line: int
) -> DemandRecord:
    try:
        start = fmt.parse_time(fields[index[fmt.pickup_time]])
        end = fmt.parse_time(fields[index[fmt.dropoff_time]]) if fmt.dropoff_time else None
    except (ValueError, TypeError, OverflowError):
        raise _Reject("unparsable") from None
    coords = [
        _number(fields, index, fmt.pickup_lat, "missing_coords"),
        _number(fields, index, fmt.pickup_lng, "missing_coords"),
    ]
    if fmt.dropoff_lat and fmt.dropoff_lng:
        coords += [
            _number(fields, index, fmt.dropoff_lat, "missing_coords"),
            _number(fields, index, fmt.dropoff_lng, "missing_coords"),
        ]
    if any(c == 0.0 for c in coords):
        raise _Reject("zero_coords")
    lats, lngs = coords[0::2], coords[1::2]
    if any(not -90 <= v <= 90 for v in lats if v is not None) or any(
        not -180 <= v <= 180 for v in lngs if v is not None
    ):
        raise _Reject("outside_city")
    duration = (end - start) if end is not None else None
    if fmt.duration_s:
        duration = _number(fields, index, fmt.duration_s, "none")
    miles = _number(fields, index, fmt.distance_miles, "none") if fmt.distance_miles else None
    if duration is not None and duration < 0:
        raise _Reject("dropoff_before_pickup")
    if miles is not None and miles < 0:
        raise _Reject("unparsable")
    # A recorded 0 on a trip that moved (Chicago often has it) means "not recorded".
    dist_km = miles * MILE_KM if miles else None
    plat, plng = coords[0], coords[1]
    dlat, dlng = (coords[2], coords[3]) if len(coords) == 4 else (None, None)
    assert plat is not None and plng is not None
    if duration == 0:
        raise _Reject("zero_length")
    if (
        dlat is not None
        and dlng is not None
        and dist_km is None
        and haversine_m(plat, plng, dlat, dlng) < _ZERO_LENGTH_M
    ):
        raise _Reject("zero_length")
    return DemandRecord(line, start, plat, plng, dlat, dlng, dist_km, duration)


@dataclass(frozen=True)
class TripLengthModel:
    """Lognormal straight-line trip length in km, clipped to [min_km, max_km]."""

    mu: float
    sigma: float
    min_km: float = 0.2
    max_km: float = 30.0

    def sample_km(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.clip(rng.lognormal(self.mu, self.sigma, n), self.min_km, self.max_km)


# `fit_trip_length` on the accepted rows of the NYC yellow + green Jan 2016 samples in the NYC
# boroughs (9,763 trips between 50 m and 60 km): median 2.1 km, 95th percentile 9.5 km.
DEFAULT_TRIP_LENGTH = TripLengthModel(mu=0.793, sigma=0.856)


def fit_trip_length(records: Iterable[DemandRecord]) -> TripLengthModel:
    """Fit the lognormal trip-length model on records with a recorded dropoff."""
    d = np.array(
        [
            haversine_m(r.pickup_lat, r.pickup_lng, r.dropoff_lat, r.dropoff_lng) / 1000
            for r in records
            if r.dropoff_lat is not None and r.dropoff_lng is not None
        ]
    )
    d = d[(d > 0.05) & (d < 60)]
    if len(d) < 2:
        raise ValueError("need at least two trips with a dropoff to fit a trip-length model")
    logs = np.log(d)
    return TripLengthModel(mu=float(logs.mean()), sigma=float(logs.std()))


def _offset(
    lat: np.ndarray, lng: np.ndarray, north_km: np.ndarray, east_km: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    dlat = np.degrees(north_km / EARTH_RADIUS_KM)
    dlng = np.degrees(east_km / (EARTH_RADIUS_KM * np.cos(np.radians(lat))))
    return lat + dlat, lng + dlng


def _jitter_inside(
    city: City, lat: np.ndarray, lng: np.ndarray, sigma_m: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian jitter; points that land outside are redrawn, and kept as they were if none fit."""
    out_lat, out_lng = lat.copy(), lng.copy()
    todo = np.arange(len(lat))
    for _ in range(_MAX_REDRAWS):
        if not len(todo) or sigma_m <= 0:
            break
        n, e = rng.normal(0, sigma_m / 1000, (2, len(todo)))
        nl, ng = _offset(lat[todo], lng[todo], n, e)
        ok = city.contains_many(nl, ng)
        out_lat[todo[ok]], out_lng[todo[ok]] = nl[ok], ng[ok]
        todo = todo[~ok]
    return out_lat, out_lng


def _synth_dropoffs(
    city: City, lat: np.ndarray, lng: np.ndarray, model: TripLengthModel, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    out_lat, out_lng = np.empty_like(lat), np.empty_like(lng)
    todo = np.arange(len(lat))
    for attempt in range(_MAX_REDRAWS):
        if not len(todo):
            break
        dist = model.sample_km(len(todo), rng) * 0.7 ** (attempt // 4)  # shrink near the edges
        bearing = rng.uniform(0, 2 * math.pi, len(todo))
        nl, ng = _offset(lat[todo], lng[todo], dist * np.cos(bearing), dist * np.sin(bearing))
        ok = city.contains_many(nl, ng)
        out_lat[todo[ok]], out_lng[todo[ok]] = nl[ok], ng[ok]
        todo = todo[~ok]
    if len(todo):
        pts = city.sample_points(len(todo), rng)
        out_lat[todo], out_lng[todo] = pts[:, 0], pts[:, 1]
    return out_lat, out_lng


def replay(
    records: Sequence[DemandRecord],
    city: City,
    *,
    duration_s: float,
    rate_per_hour: float | None = None,
    seed: int = 0,
    window_start_s: float | None = None,
    jitter_m: float = 150.0,
    trip_length: TripLengthModel = DEFAULT_TRIP_LENGTH,
) -> list[TripRequest]:
    """Fold `records` by time of day onto [0, duration_s) and resample to `rate_per_hour`."""
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if rate_per_hour is not None and not (rate_per_hour >= 0 and math.isfinite(rate_per_hour)):
        raise ValueError(f"rate_per_hour must be >= 0, got {rate_per_hour}")
    tod = np.array([r.time_of_day_s for r in records], dtype=float)
    if window_start_s is None:
        scale = duration_s / DAY_S
        t_src = tod * scale
        chosen = np.arange(len(records))
    else:
        if duration_s > DAY_S:
            raise ValueError("a time-of-day window cannot be longer than 24 h")
        scale = 1.0
        off = (tod - window_start_s) % DAY_S
        chosen = np.flatnonzero(off < duration_s)
        t_src = off
    if len(chosen) == 0:
        raise DemandError("no demand rows fall in the replay window")
    rng = np.random.default_rng(seed)
    m = len(chosen)
    target = m if rate_per_hour is None else int(round(rate_per_hour * duration_s / 3600))
    reps, extra = divmod(target, m)
    picks = [np.tile(chosen, reps), np.sort(rng.choice(chosen, extra, replace=False))]
    idx = np.concatenate(picks).astype(np.int64)
    # The first use of a source row replays it as recorded; further copies are jittered.
    copy = np.zeros(len(idx), dtype=bool)
    if reps:
        copy[m:] = True
    t = t_src[idx].copy()
    n_copy = int(copy.sum())
    if n_copy:
        t_new = t[copy] + rng.normal(0, 600 * scale, n_copy)
        # A folded day wraps at midnight; a real-time window has hard edges.
        wrapped = np.mod(t_new, duration_s) if window_start_s is None else None
        t[copy] = _reflect(t_new, duration_s) if wrapped is None else _below(wrapped, duration_s)
    plat = np.array([records[i].pickup_lat for i in idx], dtype=float)
    plng = np.array([records[i].pickup_lng for i in idx], dtype=float)
    has_drop = np.array([records[i].dropoff_lat is not None for i in idx], dtype=bool)
    dlat = np.array([_or_nan(records[i].dropoff_lat) for i in idx], dtype=float)
    dlng = np.array([_or_nan(records[i].dropoff_lng) for i in idx], dtype=float)
    if n_copy:
        plat[copy], plng[copy] = _jitter_inside(city, plat[copy], plng[copy], jitter_m, rng)
        jd = copy & has_drop
        dlat[jd], dlng[jd] = _jitter_inside(city, dlat[jd], dlng[jd], jitter_m, rng)
    if not has_drop.all():
        nd = ~has_drop
        dlat[nd], dlng[nd] = _synth_dropoffs(city, plat[nd], plng[nd], trip_length, rng)
    order = np.lexsort((np.arange(len(idx)), t))
    out: list[TripRequest] = []
    for k, j in enumerate(order):
        rec = records[idx[j]]
        out.append(
            TripRequest(
                k,
                float(t[j]),
                float(plat[j]),
                float(plng[j]),
                float(dlat[j]),
                float(dlng[j]),
                rec.distance_km,
                rec.duration_s,
                rec.row,
                not bool(has_drop[j]),
                bool(copy[j]),
            )
        )
    return out


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _reflect(t: np.ndarray, duration_s: float) -> np.ndarray:
    """Reflect times into [0, duration_s) so jitter does not pile requests on the edges."""
    period = 2 * duration_s
    r = np.mod(t, period)
    r = np.where(r >= duration_s, period - r, r)
    return _below(r, duration_s)


def _below(t: np.ndarray, duration_s: float) -> np.ndarray:
    clipped: np.ndarray = np.clip(t, 0.0, np.nextafter(duration_s, 0.0))
    return clipped


@dataclass(frozen=True)
class Hotspot:
    lat: float
    lng: float
    weight: float = 1.0
    sigma_m: float = 1000.0


def hotspot_demand(
    city: City,
    *,
    duration_s: float,
    rate_per_hour: float,
    seed: int = 0,
    hotspots: Sequence[Hotspot] | None = None,
    n_hotspots: int = 6,
    background_share: float = 0.2,
    trip_length: TripLengthModel = DEFAULT_TRIP_LENGTH,
) -> list[TripRequest]:
    """Poisson demand at `rate_per_hour`: pickups around hotspots plus a uniform background.

    Without `hotspots`, `n_hotspots` centres are drawn uniformly inside the city with weights
    uniform in [0.5, 1.5]; all of it from `seed`.
    """
    if not duration_s > 0 or not rate_per_hour >= 0:
        raise ValueError("duration_s must be > 0 and rate_per_hour >= 0")
    if not 0 <= background_share <= 1:
        raise ValueError("background_share must be in [0, 1]")
    rng = np.random.default_rng(seed)
    if hotspots is None:
        centres = city.sample_points(n_hotspots, rng)
        weights = rng.uniform(0.5, 1.5, n_hotspots)
        hotspots = [
            Hotspot(float(a), float(b), float(w))
            for (a, b), w in zip(centres, weights, strict=True)
        ]
    n = int(rng.poisson(rate_per_hour * duration_s / 3600))
    t = np.sort(rng.uniform(0, duration_s, n))
    plat, plng = np.empty(n), np.empty(n)
    if hotspots:
        w = np.array([h.weight for h in hotspots], dtype=float)
        comp = rng.choice(len(hotspots), n, p=w / w.sum())
        hot = rng.random(n) >= background_share
    else:
        comp = np.zeros(n, dtype=np.int64)
        hot = np.zeros(n, dtype=bool)
    background = city.sample_points(int((~hot).sum()), rng)
    plat[~hot], plng[~hot] = background[:, 0], background[:, 1]
    for k, h in enumerate(hotspots or []):
        sel = hot & (comp == k)
        c = int(sel.sum())
        if not c:
            continue
        lat0, lng0 = np.full(c, h.lat), np.full(c, h.lng)
        lat, lng = _jitter_inside(city, lat0, lng0, h.sigma_m, rng)
        plat[sel], plng[sel] = lat, lng
    dlat, dlng = _synth_dropoffs(city, plat, plng, trip_length, rng)
    return [
        TripRequest(
            i,
            float(t[i]),
            float(plat[i]),
            float(plng[i]),
            float(dlat[i]),
            float(dlng[i]),
            dropoff_synthetic=True,
        )
        for i in range(n)
    ]


@dataclass
class DemandPlan:
    """What the simulator replays, and where it came from (for the report)."""

    requests: list[TripRequest]
    source: str  # the CSV path, or "hotspots"
    format_name: str | None = None
    rows_read: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


def build_demand(
    city: City,
    demand_path: str | os.PathLike[str] | None,
    *,
    duration_s: float,
    rate_per_hour: float | None = None,
    seed: int = 0,
    window_start_s: float | None = None,
) -> DemandPlan:
    """The `--demand`/`--demand-rate` logic: replay a CSV, or hotspot demand without one."""
    if demand_path is None:
        rate = DEFAULT_SYNTHETIC_RATE_PER_HOUR if rate_per_hour is None else rate_per_hour
        reqs = hotspot_demand(city, duration_s=duration_s, rate_per_hour=rate, seed=seed)
        return DemandPlan(reqs, "hotspots")
    data = load_demand(demand_path, city)
    if not data.records:
        raise DemandError(f"demand file {data.path} has no usable rows (rejected: {data.rejected})")
    reqs = replay(
        data.records,
        city,
        duration_s=duration_s,
        rate_per_hour=rate_per_hour,
        seed=seed,
        window_start_s=window_start_s,
    )
    return DemandPlan(reqs, str(data.path), data.format.name, data.rows_read, dict(data.rejected))
