"""The geo index debugging map: a Leaflet page and the GeoJSON it draws, read from the same
snapshots dispatch queries, so an engineer sees what the index and the dispatcher saw.

Access: admins (bearer header, or `?access_token=` since the page passes its token on), or
anyone when `settings.debug_map_public` (the embedded mode). Static files (Leaflet, the page's
script, the public neighbourhood outlines) are served to anyone: they hold no fleet data.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Any

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory
from pydantic import AfterValidator, BeforeValidator, Field

from accounts.auth import principal_from_request
from accounts.model import Role
from geoindex import Snapshot
from ridehail.kernel.errors import Problem, problem_response
from ridehail.kernel.formats import iso
from ridehail.kernel.validation import Query, doc, query
from trips.model import TripNotFound

from . import debug_geojson as gj
from . import inspection
from .engine import Engine

STATIC = Path(__file__).resolve().parent / "static" / "debugmap"
VENDOR = STATIC / "vendor"
MAX_CELLS = 20_000
# The index keeps only its last few snapshots (a fraction of a second at the publish rate), too
# short to step back through from a page; the map pins the snapshot it shows (at most one per
# PIN_EVERY_S, the last PINNED of them), so the page can step back through what it has shown.
PIN_EVERY_S = 1.0
PINNED = 20

bp = Blueprint("debugmap", __name__, url_prefix="/debug", static_folder=str(STATIC),
               static_url_path="/static")


# --- query parameters ------------------------------------------------------------------------

def _split_bbox(value: Any) -> Any:
    if isinstance(value, str):
        parts = value.split(",")
        try:
            nums = tuple(float(p) for p in parts)
        except ValueError:
            nums = ()
        # Parsed here, not per element, so every error names `bbox` itself.
        if len(nums) != 4 or not all(math.isfinite(n) for n in nums):
            raise ValueError("expected four numbers: min_lng,min_lat,max_lng,max_lat")
        return nums
    return value


def _check_bbox(b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    min_lng, min_lat, max_lng, max_lat = b
    if not (-180 <= min_lng <= 180 and -180 <= max_lng <= 180):
        raise ValueError("longitudes must be in [-180, 180]")
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise ValueError("latitudes must be in [-90, 90]")
    if min_lng > max_lng or min_lat > max_lat:
        raise ValueError("inverted: min must not exceed max")
    return b


BBoxParam = Annotated[tuple[float, float, float, float], BeforeValidator(_split_bbox),
                      AfterValidator(_check_bbox)]


class SnapshotQuery(Query):
    version: int | None = Field(None, ge=0, description="a recent snapshot (step back)")


class CellsQuery(SnapshotQuery):
    resolution: int = Field(8, ge=0, le=15, description="H3 resolution")
    bbox: BBoxParam | None = Field(None, description="min_lng,min_lat,max_lng,max_lat")


class DriversQuery(SnapshotQuery):
    bbox: BBoxParam | None = Field(None, description="min_lng,min_lat,max_lng,max_lat")
    limit: int = Field(5000, ge=1, le=50_000)


class TripsQuery(Query):
    bbox: BBoxParam | None = Field(None, description="min_lng,min_lat,max_lng,max_lat")
    limit: int = Field(500, ge=1, le=5000)


class SurgeQuery(Query):
    bbox: BBoxParam | None = Field(None, description="min_lng,min_lat,max_lng,max_lat")


class NearestQuery(SnapshotQuery):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    k: int = Field(10, ge=1, le=100)
    radius_m: float | None = Field(None, gt=0, le=50_000)
    vehicle_class: str | None = Field(None, max_length=40)
    available_only: bool = True


# --- helpers ---------------------------------------------------------------------------------

def _engine() -> Engine:
    eng: Engine = current_app.extensions["dispatch"]
    return eng


@bp.before_request
def _authorize() -> None:
    if request.endpoint == "debugmap.static":
        if str((request.view_args or {}).get("filename", "")).startswith("vendor/"):
            _require_vendor()
        return
    if current_app.extensions["settings"].debug_map_public:
        return
    principal = principal_from_request(allow_query_token=True)
    if principal.role != Role.admin:
        raise Problem(403, "Forbidden", f"the debug map is for admins, not {principal.role}")


def _require_vendor() -> None:
    if not (VENDOR / "leaflet.js").is_file() or not (VENDOR / "leaflet.css").is_file():
        raise Problem(503, "Service Unavailable",
                      "Leaflet is not installed: run `make` (or `npm ci --prefix web` and copy "
                      "web/node_modules/leaflet/dist/{leaflet.js,leaflet.css,images} into "
                      f"{VENDOR})")


class _Pins:
    """Snapshots the map has shown, kept a little longer than the index keeps them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snaps: deque[Snapshot] = deque(maxlen=PINNED)
        self._at = -1e18

    def pin(self, snap: Snapshot) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._at >= PIN_EVERY_S and not any(s is snap for s in self._snaps):
                self._snaps.append(snap)
                self._at = now

    def all(self) -> list[Snapshot]:
        with self._lock:
            return list(self._snaps)

    def versions(self) -> set[int]:
        return {s.version for s in self.all()}


def _pins() -> _Pins:
    pins: _Pins | None = current_app.extensions.get("debugmap_pins")
    if pins is None:
        pins = current_app.extensions.setdefault("debugmap_pins", _Pins())
    return pins


def _recent() -> list[Snapshot]:
    """Recent snapshots, newest first, without duplicates."""
    seen: dict[int, Snapshot] = {}
    for s in [_engine().index.snapshot(), *_engine().index.history(), *_pins().all()]:
        seen.setdefault(s.version, s)
    return sorted(seen.values(), key=lambda s: s.version, reverse=True)


def _snapshot(version: int | None) -> Snapshot:
    if version is None:
        return _engine().index.snapshot()
    for snap in _recent():
        if snap.version == version:
            return snap
    raise Problem(404, "Not Found",
                  f"snapshot version {version} is not among the recent ones; see /debug/snapshot",
                  errors=[{"field": "version", "message": "unknown or too old"}])


def _default_bbox() -> gj.BBox:
    area = _engine().service_area
    return area.bounds if area is not None else gj.WORLD


def _status_of(driver_id: str) -> str | None:
    entry = _engine().directory.get(driver_id)
    return None if entry is None else entry.status.value


# --- views -----------------------------------------------------------------------------------

@bp.get("/map")
@doc("The index debugging map (HTML)", responses={200: "text/html", 503: None},
     tags=["debug"])
def page() -> Response:
    _require_vendor()
    resp = send_from_directory(STATIC, "index.html", max_age=0)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/config")
@doc("What the map page needs: tile URL, resolutions, refresh", tags=["debug"])
def config() -> Response:
    settings = current_app.extensions["settings"]
    eng = _engine()
    snap = eng.index.snapshot()
    min_lng, min_lat, max_lng, max_lat = _default_bbox()
    return jsonify(
        tile_url=settings.debug_tile_url or None,
        bounds=[[min_lat, min_lng], [max_lat, max_lng]],
        backend=snap.backend, index_resolution=snap.resolution,
        resolutions=[6, 7, 8, 9], default_resolution=8, max_cells=MAX_CELLS,
        surge_resolution=eng.config.surge_resolution, refresh_s=3,
        dispatch_radius_m=eng.config.radius_m,
    )


@bp.get("/snapshot")
@query(SnapshotQuery)
@doc("The published snapshot: version, time, counts, recent versions", tags=["debug"])
def snapshot(query: SnapshotQuery) -> Response:
    snap = _snapshot(query.version)
    current = _engine().index.snapshot()
    _pins().pin(current)
    pinned = _pins().versions()
    states: dict[str, int] = {}
    for entry in list(_engine().directory.values()):
        states[entry.status.value] = states.get(entry.status.value, 0) + 1
    return jsonify(
        version=snap.version, current_version=current.version, backend=snap.backend,
        resolution=snap.resolution, published_at=iso(snap.published_at),
        published_at_epoch=snap.published_at, publish_ms=round(snap.publish_ms, 3),
        drivers={"total": snap.total, "available": snap.available}, states=states,
        recent=[{"version": s.version, "published_at": iso(s.published_at),
                 "pinned": s.version in pinned} for s in _recent()],
    )


@bp.get("/cells.geojson")
@query(CellsQuery)
@doc("Driver counts per H3 cell (total, available)", tags=["debug"])
def cells(query: CellsQuery) -> Response:
    bbox = query.bbox or _default_bbox()
    estimate = gj.estimate_cells(bbox, query.resolution)
    if estimate > MAX_CELLS:
        detail = (f"about {estimate:,.0f} cells at resolution {query.resolution} in this bbox; "
                  f"at most {MAX_CELLS:,}: zoom in or choose a coarser resolution")
        raise Problem(422, "Unprocessable Content", detail, errors=[
            {"field": "bbox", "message": detail}, {"field": "resolution", "message": detail}])
    snap = _snapshot(query.version)
    now = snap.published_at  # what the index saw when it published, also for older versions
    if snap.backend == "h3" and query.resolution <= snap.resolution:
        counts = [(c.cell, c.total, c.available) for c in snap.cells(query.resolution, now=now)]
    else:
        counts = gj.aggregate_drivers(snap.drivers(bbox, now=now), query.resolution)
    feats = gj.cell_features(counts, query.resolution, bbox)
    return jsonify(gj.collection(feats, version=snap.version, resolution=query.resolution,
                                 bbox=list(bbox)))


@bp.get("/drivers.geojson")
@query(DriversQuery)
@doc("Drivers as points, coloured by dispatch state", tags=["debug"])
def drivers(query: DriversQuery) -> Response:
    snap = _snapshot(query.version)
    feats, truncated = gj.driver_features(snap.drivers(query.bbox, now=snap.published_at),
                                          _status_of, query.limit)
    return jsonify(gj.collection(feats, version=snap.version, limit=query.limit,
                                 truncated=truncated))


@bp.get("/trips.geojson")
@query(TripsQuery)
@doc("Open trips as pickup -> dropoff lines (the current state)", tags=["debug"])
def trips(query: TripsQuery) -> Response:
    # Trips live in the database, not in snapshots: this is always the current state.
    open_trips = inspection.open_trips(current_app.extensions["uow_factory"])
    feats, truncated = gj.trip_features(open_trips, query.bbox, query.limit)
    return jsonify(gj.collection(feats, limit=query.limit, truncated=truncated))


@bp.get("/surge.geojson")
@query(SurgeQuery)
@doc("Surge multipliers per H3 cell", tags=["debug"])
def surge(query: SurgeQuery) -> Response:
    pricer = _engine().surge
    multipliers = pricer.snapshot() if pricer is not None else {}
    feats = gj.surge_features(multipliers, query.bbox or gj.WORLD)
    return jsonify(gj.collection(feats))


@bp.get("/service_area.geojson")
@doc("The service area polygon", tags=["debug"])
def service_area() -> Response:
    area = _engine().service_area
    feats = [] if area is None else [gj.area_feature(area.geometry, area.name)]
    return jsonify(gj.collection(feats))


@bp.get("/nearest.geojson")
@query(NearestQuery)
@doc("Explain a nearest-k query: cells searched, candidates, filtered by reason",
     tags=["debug"])
def nearest(query: NearestQuery) -> Response:
    snap = _snapshot(query.version)
    radius = query.radius_m or _engine().config.radius_m
    explain = snap.explain_nearest(query.lat, query.lng, k=query.k, radius_m=radius,
                                   available_only=query.available_only,
                                   vehicle_class=query.vehicle_class, now=snap.published_at)

    def position_of(driver_id: str) -> Any:
        # now=0 disables the staleness check: stale drivers are drawn too, marked as such.
        return snap.get(driver_id, now=0.0)

    feats = gj.nearest_features(explain, query.lat, query.lng, radius, position_of)
    return jsonify(gj.collection(
        feats, version=snap.version, k=query.k, radius_m=radius,
        query={"lat": query.lat, "lng": query.lng, "vehicle_class": query.vehicle_class},
        explain=gj.explain_summary(explain)))


@bp.get("/trips/<id:trip_id>/record")
@doc("A trip's dispatch record: candidates in order, outcomes, drivers filtered out",
     tags=["debug"])
def record(trip_id: str) -> Response:
    trip, rec, offers = inspection.dispatch_record(current_app.extensions["uow_factory"],
                                                   trip_id)
    return jsonify(gj.record_view(trip, rec, offers))


@bp.errorhandler(TripNotFound)
def _no_such_trip(exc: TripNotFound) -> Response:
    return problem_response(Problem(404, "Not Found", f"no such trip {str(exc)!r}"))
