"""The simulator in a city with a road map (West Oakland's OpenStreetMap extract): cars move
along the routed path, not the straight chord, in the fleet and in a whole engine-mode run;
legs whose end is off the roads fall back to the straight line and are counted; a bad road
file is refused by the flag's name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from ridehail.bootstrap import build_sim_engine
from ridehail.cli import main
from roads import Router, load_road_network
from simulator.engine_mode import EngineSimulation
from simulator.fleet import Fleet, FleetConfig
from simulator.scenario import SimConfig, prepare

ROOT = Path(__file__).resolve().parents[2]
OAKLAND = ROOT / "data" / "roads" / "west-oakland.osm.bz2"


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_road_network(OAKLAND))


def _metres_from(router: Router, lines_lat_lng: list[list[tuple[float, float]]],
                 lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    """Distance in metres from each point to the nearest of the lines (local plane)."""
    plane = router.network.plane
    geoms = shapely.MultiLineString([plane.xy([p[0] for p in ln], [p[1] for p in ln])
                                     for ln in lines_lat_lng])
    pts = shapely.points(plane.xy(lat, lng))
    return np.asarray(shapely.distance(geoms, pts))


def _road_lines(router: Router) -> list[list[tuple[float, float]]]:
    net = router.network
    return [[(net.lat[a], net.lng[a]), (net.lat[b], net.lng[b])]
            for a, b in zip(net.src.tolist(), net.dst.tolist(), strict=True)]


def _corner_leg(router: Router) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two road nodes whose route bends far from the chord between them."""
    net = router.network
    best, pair = 0.0, (0, 1)
    for a in range(0, net.n_nodes, 3):
        for b in range(1, net.n_nodes, 3):
            r = router.route(net.lat[a], net.lng[a], net.lat[b], net.lng[b])
            off = _metres_from(router, [[(r.lat[0], r.lng[0]), (r.lat[-1], r.lng[-1])]],
                               r.lat, r.lng).max()
            if off > best:
                best, pair = off, (a, b)
    a, b = pair
    return (float(net.lat[a]), float(net.lng[a])), (float(net.lat[b]), float(net.lng[b]))


def _fleet(router: Router | None, start: tuple[float, float]) -> Fleet:
    sc = prepare(SimConfig(roads=str(OAKLAND), drivers=1, duration_s=600))
    fleet = Fleet(FleetConfig(drivers=1), sc.city, np.random.default_rng(0), router=router)
    fleet.lat0[:] = fleet.lat1[:] = start[0]
    fleet.lng0[:] = fleet.lng1[:] = start[1]
    return fleet


def test_a_car_drives_along_the_roads_not_the_chord(router: Router) -> None:
    start, end = _corner_leg(router)
    fleet = _fleet(router, start)
    arrive = fleet.go_to(0, end[0], end[1], 100.0)
    route = router.route(start[0], start[1], end[0], end[1])
    assert arrive == pytest.approx(100.0 + route.seconds)
    ts = np.linspace(100.0, arrive, 60)
    one = np.array([fleet.position(0, float(t)) for t in ts])
    many = np.array([[fleet.positions(float(t))[0][0], fleet.positions(float(t))[1][0]]
                     for t in ts])
    assert np.allclose(one, many)
    assert _metres_from(router, _road_lines(router), one[:, 0], one[:, 1]).max() < 1.0
    chord = _metres_from(router, [[start, end]], one[:, 0], one[:, 1])
    assert chord.max() > 50.0  # the chord would cut across the blocks
    assert tuple(one[-1]) == pytest.approx(end)
    assert fleet.routed_legs == 1 and not fleet.paths  # the finished leg left `paths`
    fleet.finish_legs(arrive)
    assert fleet.empty_m == pytest.approx(route.metres)


def test_without_roads_the_same_leg_is_the_chord(router: Router) -> None:
    start, end = _corner_leg(router)
    fleet = _fleet(None, start)
    arrive = fleet.go_to(0, end[0], end[1], 0.0)
    pts = np.array([fleet.position(0, float(t)) for t in np.linspace(0, arrive, 30)])
    assert _metres_from(router, [[start, end]], pts[:, 0], pts[:, 1]).max() < 0.5


def test_a_leg_cut_short_books_the_metres_driven(router: Router) -> None:
    start, end = _corner_leg(router)
    fleet = _fleet(router, start)
    arrive = fleet.go_to(0, end[0], end[1], 0.0)
    route = router.route(start[0], start[1], end[0], end[1])
    half = arrive / 2
    here = fleet.position(0, half)
    fleet.stop(0, half)
    assert fleet.empty_m == pytest.approx(np.interp(half, route.elapsed_s, route.along_m))
    assert fleet.position(0, half + 60) == pytest.approx(here)  # stopped where it was
    assert not fleet.paths


def test_an_engine_run_moves_its_cars_along_the_roads(router: Router) -> None:
    sc = prepare(SimConfig(roads=str(OAKLAND), drivers=8, duration_s=900, demand_rate=120,
                           seed=5))
    sim = EngineSimulation(sc, build_sim_engine)
    assert sim.engine.eta is sc.router  # dispatch ranks and quotes by the same routes
    seen: list[tuple[float, float]] = []
    chords: list[list[tuple[float, float]]] = []

    def sample() -> None:
        """The positions the drivers report, on the road part of each leg under way."""
        t = sim.clock.now()
        lat, lng = sim.fleet.positions(t)
        for i, route in list(sim.fleet.paths.items()):
            if route.elapsed_s[1] < t - float(sim.fleet.t0[i]) < route.elapsed_s[-2]:
                seen.append((float(lat[i]), float(lng[i])))
                chords.append([(route.lat[0], route.lng[0]), (route.lat[-1], route.lng[-1])])
        if t < 900:
            sim.clock.call_later(7.0, sample)

    sim.clock.call_at(1.0, sample)
    result = sim.run()
    assert result.kpis["completed"] > 5
    assert result.params["routed_legs"] > 10 and result.params["off_network_legs"] == 0
    assert len(seen) > 50
    lat, lng = np.array(seen).T
    assert _metres_from(router, _road_lines(router), lat, lng).max() < 1.0
    off_chord = [_metres_from(router, [c], np.array([a]), np.array([b]))[0]
                 for c, (a, b) in zip(chords, seen, strict=True)]
    assert max(off_chord) > 30.0


def test_legs_off_the_roads_fall_back_to_the_straight_line() -> None:
    # San Francisco with West Oakland's roads: every leg is across the bay from the map.
    sf = ROOT / "data" / "sf" / "neighbourhoods.geojson"
    sc = prepare(SimConfig(city=str(sf), roads=str(OAKLAND), drivers=6, duration_s=300,
                           demand_rate=120, seed=2))
    assert sc.city.name != "west-oakland" and sc.router is not None
    result = EngineSimulation(sc, build_sim_engine).run()
    assert result.kpis["completed"] > 0
    assert result.params["off_network_legs"] > 0 and result.params["routed_legs"] == 0


def test_simulate_with_roads_from_the_cli(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["simulate", "--roads", str(OAKLAND), "--drivers", "6",
                                    "--duration", "10m", "--demand-rate", "120",
                                    "--no-progress", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["params"]["city_name"] == "west-oakland"
    assert doc["params"]["road_network"] == "west-oakland"
    assert doc["params"]["routed_legs"] > 0


def test_simulate_refuses_a_file_that_is_not_a_road_map(tmp_path: Path) -> None:
    bad = tmp_path / "city.osm"
    bad.write_text('{"type": "FeatureCollection", "features": []}')
    res = CliRunner().invoke(main, ["simulate", "--roads", str(bad), "--no-progress",
                                    "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "--roads" in res.output and "not a readable OpenStreetMap file" in res.output
    assert "Traceback" not in res.output
