"""The API in a city with a road map (RIDEHAIL_ROADS): the engine's ETA model is the router, so
nearby's `eta_s` is the drive along the roads, not the straight line; a file that is not a
road map stops start-up naming the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely

from dispatch.eta import StraightLineEta
from dispatch.live_eta import LiveEta
from ridehail.settings import SettingsError
from roads import Router, load_road_network
from tests.conftest import app_factory, make_settings
from tests.rides.conftest import Api, go_online, publish, sign_up_driver, sign_up_rider

OAKLAND = Path(__file__).resolve().parents[2] / "data" / "roads" / "west-oakland.osm.bz2"


def test_nearby_etas_follow_the_roads(tmp_path: Path) -> None:
    network = load_road_network(OAKLAND)
    area = tmp_path / "west-oakland.geojson"
    area.write_text(json.dumps({"type": "Feature", "properties": {"name": "west-oakland"},
                                "geometry": shapely.geometry.mapping(network.outline())}))
    router = Router(network)
    # A pickup and a driver on two road nodes whose drive takes longest against the chord's.
    lat, lng = network.lat, network.lng
    pickup = (float(lat[0]), float(lng[0]))
    best = max(range(1, network.n_nodes),
               key=lambda k: router.route(float(lat[k]), float(lng[k]), *pickup).seconds
               / max(1e-9, StraightLineEta().pickup_etas([float(lat[k])], [float(lng[k])],
                                                         *pickup, 0.0)[0]))
    driver_at = (float(lat[best]), float(lng[best]))

    def settings_for(**overrides: object) -> object:
        return make_settings(tmp_path, roads=OAKLAND, service_area=area, **overrides)

    with app_factory(settings_for, start_background=False) as make:
        app = make()
        eta_model = app.extensions["dispatch"].eta  # the router, under the live correction
        assert isinstance(eta_model, LiveEta) and isinstance(eta_model.model, Router)
        api = Api(app.test_client())
        rider, driver = sign_up_rider(api), sign_up_driver(api)
        go_online(api, driver, *driver_at)
        publish(app)
        r = api.get(f"/v1/vehicles/nearby?lat={pickup[0]}&lng={pickup[1]}&radius_m=3000",
                    rider.token)
        assert r.status == 200, r.text
        [feature] = r.body["features"]
        eta = feature["properties"]["eta_s"]
    assert eta == pytest.approx(router.route(*driver_at, *pickup).seconds, abs=0.06)
    straight = StraightLineEta().pickup_etas([driver_at[0]], [driver_at[1]], *pickup, 0.0)[0]
    assert eta > straight * 1.2


def test_a_file_that_is_not_a_road_map_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="RIDEHAIL_ROADS: no such file"):
        make_settings(tmp_path, roads=tmp_path / "missing.osm.pbf")
    bad = tmp_path / "roads.osm"
    bad.write_text("not a map")

    def settings_for(**overrides: object) -> object:
        return make_settings(tmp_path, roads=bad, **overrides)

    with (app_factory(settings_for, start_background=False) as make,
          pytest.raises(SettingsError, match="RIDEHAIL_ROADS: road file .*roads.osm: not a "
                                             "readable OpenStreetMap file")):
        make()
