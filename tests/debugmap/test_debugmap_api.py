"""The debug map's endpoints: GeoJSON validity, bbox filtering and limits, snapshot versions,
the nearest explanation and dispatch records, and who may read them."""

from __future__ import annotations

import math
from typing import Any

import geojson
import pytest
from flask import Flask

import dispatch.debugmap as debugmap
from tests.debugmap.conftest import FAR, Fleet, admin_token
from tests.rides.conftest import PICKUP, Api, sign_up_rider

MIDTOWN = "-74.00,40.74,-73.97,40.78"
FAR_BBOX = f"{FAR[1] - 0.01},{FAR[0] - 0.01},{FAR[1] + 0.01},{FAR[0] + 0.01}"


def valid_fc(api: Api, path: str) -> dict[str, Any]:
    r = api.get(path)
    assert r.status == 200, r.text
    fc = geojson.loads(r.text)
    assert fc["type"] == "FeatureCollection"
    assert fc.is_valid, fc.errors()
    assert fc["meta"]["count"] == len(fc["features"])
    return r.body  # type: ignore[no-any-return]


def test_every_geojson_endpoint_is_valid_and_has_the_fleet(api: Api, fleet: Fleet) -> None:
    drivers = valid_fc(api, "/debug/drivers.geojson")
    assert {f["id"] for f in drivers["features"]} == {
        *(d.id for d in fleet.drivers), fleet.xl.id, fleet.far.id}
    cells = valid_fc(api, "/debug/cells.geojson?resolution=8")
    assert sum(f["properties"]["total"] for f in cells["features"]) == 6
    trips = valid_fc(api, "/debug/trips.geojson")
    assert [f["id"] for f in trips["features"]] == [fleet.trip["id"]]
    line = trips["features"][0]["geometry"]
    assert line["type"] == "LineString"
    assert line["coordinates"][0] == [PICKUP["lng"], PICKUP["lat"]]
    valid_fc(api, "/debug/surge.geojson")
    area = valid_fc(api, "/debug/service_area.geojson")
    assert area["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    near = valid_fc(api, f"/debug/nearest.geojson?lat={PICKUP['lat']}&lng={PICKUP['lng']}&k=2")
    assert near["meta"]["explain"]["found"]


def test_driver_states_come_from_the_dispatcher(api: Api, fleet: Fleet) -> None:
    body = api.get("/debug/drivers.geojson").body
    state = {f["id"]: f["properties"]["state"] for f in body["features"]}
    assert state[fleet.offered_to] == "offered"
    assert state[fleet.rejected_by] == "available"
    assert state[fleet.far.id] == "available"
    assert body["meta"]["truncated"] is False


def test_bbox_filters_drivers_cells_and_trips(api: Api, fleet: Fleet) -> None:
    far = api.get(f"/debug/drivers.geojson?bbox={FAR_BBOX}").body
    assert [f["id"] for f in far["features"]] == [fleet.far.id]
    mid = api.get(f"/debug/drivers.geojson?bbox={MIDTOWN}").body
    assert fleet.far.id not in {f["id"] for f in mid["features"]}
    assert len(mid["features"]) == 5
    cells = api.get(f"/debug/cells.geojson?resolution=9&bbox={FAR_BBOX}").body
    assert [f["properties"]["total"] for f in cells["features"]] == [1]
    assert api.get(f"/debug/trips.geojson?bbox={FAR_BBOX}").body["features"] == []
    assert len(api.get(f"/debug/trips.geojson?bbox={MIDTOWN}").body["features"]) == 1


def test_limits_truncate_and_say_so(api: Api, fleet: Fleet) -> None:
    body = api.get("/debug/drivers.geojson?limit=2").body
    assert len(body["features"]) == 2
    assert body["meta"]["truncated"] is True
    trips = api.get("/debug/trips.geojson?limit=1").body
    assert len(trips["features"]) == 1 and trips["meta"]["truncated"] is False


@pytest.mark.parametrize("path, field", [
    ("/debug/cells.geojson?resolution=9", "bbox"),  # the whole service area at res 9
    ("/debug/cells.geojson?resolution=6&bbox=-180,-90,180,90", "resolution"),
    ("/debug/cells.geojson?bbox=1,2,3", "bbox"),
    ("/debug/cells.geojson?bbox=a,b,c,d", "bbox"),
    ("/debug/cells.geojson?bbox=-73.9,40.7,-74.0,40.8", "bbox"),  # inverted longitudes
    ("/debug/cells.geojson?bbox=-74.0,40.8,-73.9,40.7", "bbox"),  # inverted latitudes
    ("/debug/drivers.geojson?bbox=-74,95,-73,96", "bbox"),
    ("/debug/drivers.geojson?bbox=nan,40,-73,41", "bbox"),
    ("/debug/drivers.geojson?limit=0", "limit"),
    ("/debug/drivers.geojson?limit=1000000", "limit"),
    ("/debug/trips.geojson?bbox=-74,40", "bbox"),
    ("/debug/cells.geojson?resolution=16", "resolution"),
    ("/debug/cells.geojson?resolution=x", "resolution"),
    ("/debug/nearest.geojson?lat=91&lng=0", "lat"),
    ("/debug/nearest.geojson?lat=40.7", "lng"),
    ("/debug/nearest.geojson?lat=40.7&lng=-73.9&k=0", "k"),
    ("/debug/nearest.geojson?lat=40.7&lng=-73.9&radius_m=-5", "radius_m"),
    ("/debug/snapshot?version=-1", "version"),
])
def test_bad_or_too_large_queries_are_422_naming_the_field(api: Api, path: str,
                                                          field: str) -> None:
    r = api.get(path)
    assert r.status == 422, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert field in {e["field"] for e in r.body["errors"]}


def test_too_many_cells_names_both_bbox_and_resolution(api: Api) -> None:
    r = api.get("/debug/cells.geojson?resolution=9&bbox=-74.3,40.4,-73.6,41.0")
    assert r.status == 422
    assert {e["field"] for e in r.body["errors"]} == {"bbox", "resolution"}
    # the same bbox at a coarser resolution is fine
    assert api.get("/debug/cells.geojson?resolution=7&bbox=-74.3,40.4,-73.6,41.0").status == 200


def test_snapshot_panel_and_stepping_back(app: Flask, api: Api, fleet: Fleet) -> None:
    index = app.extensions["dispatch"].index
    old = index.snapshot().version
    snap = api.get("/debug/snapshot").body
    assert snap["version"] == old and snap["drivers"] == {"total": 6, "available": 5}
    assert snap["states"]["offered"] == 1 and snap["publish_ms"] >= 0
    assert snap["published_at"].endswith("+00:00")
    index.remove(fleet.far.id)
    index.publish()
    now = api.get("/debug/snapshot").body
    assert now["version"] > old and now["drivers"]["total"] == 5
    assert old in {v["version"] for v in now["recent"]}
    back = api.get(f"/debug/snapshot?version={old}").body
    assert back["version"] == old and back["drivers"]["total"] == 6
    old_ids = {f["id"] for f in api.get(f"/debug/drivers.geojson?version={old}").body["features"]}
    new_ids = {f["id"] for f in api.get("/debug/drivers.geojson").body["features"]}
    assert old_ids - new_ids == {fleet.far.id}
    r = api.get("/debug/cells.geojson?version=999999&resolution=7")
    assert r.status == 404 and r.body["errors"][0]["field"] == "version"


def test_nearest_explains_what_was_found_and_filtered(api: Api, fleet: Fleet) -> None:
    path = (f"/debug/nearest.geojson?lat={PICKUP['lat']}&lng={PICKUP['lng']}"
            "&k=2&radius_m=2000&vehicle_class=standard")
    body = api.get(path).body
    x = body["meta"]["explain"]
    dists = [n["distance_m"] for n in x["found"]]
    assert len(dists) == 2 and dists == sorted(dists)
    # the xl driver is the wrong class, the offered driver is not available
    assert x["filtered_counts"]["class"] == 1
    assert x["filtered_counts"]["unavailable"] == 1
    assert x["candidates_examined"] >= 4 and x["rings_searched"] >= 1
    roles = [f["properties"]["role"] for f in body["features"]]
    assert roles.count("neighbor") == 2 and roles.count("query") == 1
    filtered = {f["properties"]["driver_id"]: f["properties"]["reason"]
                for f in body["features"] if f["properties"]["role"] == "filtered"}
    # Which drivers beyond the radius a search touches depends on the backend (quadtree boxes
    # reach further than H3 rings); those are reported as too far, and only the far driver is.
    assert {d: r for d, r in filtered.items() if r != "too_far"} == {
        fleet.xl.id: "class", fleet.offered_to: "unavailable"}
    assert {d for d, r in filtered.items() if r == "too_far"} <= {fleet.far.id}
    radius = next(f for f in body["features"] if f["properties"]["role"] == "radius")
    lng, lat = radius["geometry"]["coordinates"][0][0]
    assert math.isclose(_haversine(lat, lng, PICKUP["lat"], PICKUP["lng"]), 2000, rel_tol=0.01)


def test_dispatch_record_lists_candidates_outcomes_and_filters(api: Api, fleet: Fleet) -> None:
    r = api.get(f"/debug/trips/{fleet.trip['id']}/record")
    assert r.status == 200, r.text
    rec = r.body
    assert rec["trip"]["id"] == fleet.trip["id"]
    outcomes = [(c["driver_id"], c["outcome"]) for c in rec["candidates"]]
    assert outcomes == [(fleet.rejected_by, "rejected"), (fleet.offered_to, "pending")]
    assert rec["searches"], "the record keeps the candidate search"
    first = rec["searches"][0]
    assert first["filtered_counts"]["class"] >= 1
    assert fleet.xl.id in first["filtered"]["class"]
    kinds = [e["kind"] for e in rec["events"]]
    assert kinds.index("offered") < kinds.index("rejected")
    assert api.get("/debug/trips/123456789/record").status == 404
    assert api.get("/debug/trips/not-an-id/record").status == 404


def _haversine(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    from geoindex import haversine_m

    return float(haversine_m(lat1, lng1, lat2, lng2))


# --- access ----------------------------------------------------------------------------------

PATHS = ["/debug/map", "/debug/snapshot", "/debug/config", "/debug/drivers.geojson",
         "/debug/cells.geojson?resolution=7", "/debug/trips.geojson",
         "/debug/nearest.geojson?lat=40.75&lng=-73.98"]


@pytest.mark.parametrize("path", PATHS)
def test_embedded_mode_is_public(api: Api, path: str) -> None:
    assert api.get(path).status == 200


@pytest.mark.parametrize("path", PATHS)
def test_private_map_needs_an_admin(make_debug_app: Any, path: str) -> None:
    app = make_debug_app(debug_public=False)
    api = Api(app.test_client())
    r = api.get(path)
    assert r.status == 401 and r.headers["Content-Type"].startswith("application/problem+json")
    assert api.get(path, "not-a-token").status == 401
    rider = sign_up_rider(api)
    r = api.get(path, rider.token)
    assert r.status == 403 and "admin" in r.body["detail"]
    token = admin_token(app)
    assert api.get(path, token).status == 200
    sep = "&" if "?" in path else "?"
    assert api.get(f"{path}{sep}access_token={token}").status == 200
    assert api.get(f"{path}{sep}access_token={rider.token}").status == 403


def test_static_assets_hold_no_data_and_need_no_token(make_debug_app: Any) -> None:
    api = Api(make_debug_app(debug_public=False).test_client())
    for path in ("/debug/static/map.js", "/debug/static/vendor/leaflet.js",
                 "/debug/static/nyc_neighbourhoods.geojson"):
        assert api.get(path).status == 200, path


def test_missing_leaflet_is_a_clear_503(api: Api, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Any) -> None:
    monkeypatch.setattr(debugmap, "VENDOR", tmp_path / "no-vendor")
    for path in ("/debug/map", "/debug/static/vendor/leaflet.js"):
        r = api.get(path)
        assert r.status == 503, path
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert "make" in r.body["detail"] and "npm ci --prefix web" in r.body["detail"]


def test_tile_url_is_configurable(make_debug_app: Any) -> None:
    api = Api(make_debug_app().test_client())
    assert api.get("/debug/config").body["tile_url"] is None
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    api = Api(make_debug_app(debug_tile_url=url).test_client())
    assert api.get("/debug/config").body["tile_url"] == url


def test_a_bad_tile_url_stops_start_up() -> None:
    from ridehail.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="RIDEHAIL_DEBUG_TILE_URL"):
        Settings.from_env(env={"RIDEHAIL_DEBUG_TILE_URL": "ftp://x"})
    assert Settings.from_env(env={}).debug_tile_url == ""
