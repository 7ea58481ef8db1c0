"""The road router on the shipped OpenStreetMap extracts: routes exist, are no shorter than the
straight line and follow the network's edges; shortest paths are shortest; snapping finds the
nearest node; one-way streets are driven one way; bad files and far points are refused by name.
"""

from __future__ import annotations

import bz2
import math
from pathlib import Path

import numpy as np
import pytest

from dispatch.eta import StraightLineEta
from ridehail.kernel.geo import haversine_m, haversine_many
from roads import OffNetwork, RoadError, Router, load_road_network
from roads.router import ACCESS_SPEED_MPS

ROADS = Path(__file__).resolve().parents[2] / "data" / "roads"
OAKLAND = ROADS / "west-oakland.osm.bz2"


@pytest.fixture(scope="module")
def router() -> Router:
    return Router(load_road_network(OAKLAND))


def _edges(router: Router) -> set[tuple[int, int]]:
    net = router.network
    return set(zip(net.src.tolist(), net.dst.tolist(), strict=True))


def _points_between_nodes(router: Router, n: int, seed: int) -> np.ndarray:
    """Positions a few metres off random road nodes (so each snaps, but is not a node)."""
    net = router.network
    rng = np.random.default_rng(seed)
    k = rng.integers(0, net.n_nodes, n)
    return np.column_stack([net.lat[k] + rng.normal(0, 0.0001, n),
                            net.lng[k] + rng.normal(0, 0.0001, n)])


def test_west_oakland_loads_as_one_connected_network(router: Router) -> None:
    net = router.network
    assert net.name == "west-oakland"
    assert net.n_nodes >= 50 and net.n_edges >= net.n_nodes
    min_lat, min_lng, max_lat, max_lng = net.bounds
    assert 37.80 < min_lat < max_lat < 37.82 and -122.31 < min_lng < max_lng < -122.29
    # No edge is a zero-length or a duplicated pair, and every length is its chord's.
    assert len(_edges(router)) == net.n_edges
    chord = haversine_many(net.lat[net.src], net.lng[net.src], net.lat[net.dst],
                           net.lng[net.dst])
    assert np.allclose(net.length_m, chord)


def test_routes_exist_follow_edges_and_are_no_shorter_than_the_straight_line(
        router: Router) -> None:
    pts = _points_between_nodes(router, 40, seed=1)
    edges = _edges(router)
    net = router.network
    for (a_lat, a_lng), (b_lat, b_lng) in zip(pts[:20], pts[20:], strict=True):
        r = router.route(a_lat, a_lng, b_lat, b_lng)
        straight = haversine_m(a_lat, a_lng, b_lat, b_lng)
        assert r.metres >= straight - 1e-6
        assert r.seconds > 0 and r.metres > 0
        assert (r.lat[0], r.lng[0], r.lat[-1], r.lng[-1]) == (a_lat, a_lng, b_lat, b_lng)
        assert r.elapsed_s[-1] == pytest.approx(r.seconds)
        assert r.along_m[-1] == pytest.approx(r.metres)
        assert (np.diff(r.elapsed_s) >= 0).all()
        # Between the two access stretches, every step is a directed edge of the network.
        nodes = [router.network.nearest(la, ln)[0] for la, ln in zip(r.lat[1:-1], r.lng[1:-1],
                                                                       strict=True)]
        assert all((u, v) in edges for u, v in zip(nodes, nodes[1:], strict=False))
        assert np.allclose(net.lat[nodes], r.lat[1:-1])


def test_the_route_is_the_fastest(router: Router) -> None:
    """Every node pair's time agrees with Floyd-Warshall over the edge list."""
    net = router.network
    n = net.n_nodes
    best = np.full((n, n), np.inf)
    np.fill_diagonal(best, 0.0)
    best[net.src, net.dst] = np.minimum(best[net.src, net.dst], net.seconds)
    for k in range(n):
        best = np.minimum(best, best[:, k:k + 1] + best[k:k + 1, :])
    for a in range(0, n, 7):
        for b in range(0, n, 5):
            r = router.route(float(net.lat[a]), float(net.lng[a]), float(net.lat[b]),
                             float(net.lng[b]))
            assert r.seconds == pytest.approx(best[a, b], abs=1e-6), (a, b)


def test_snapping_finds_the_nearest_node(router: Router) -> None:
    net = router.network
    for lat, lng in _points_between_nodes(router, 50, seed=2):
        node, dist = router.snap(float(lat), float(lng))
        brute = haversine_many(lat, lng, net.lat, net.lng)
        assert brute[node] == pytest.approx(brute.min())
        assert dist == pytest.approx(brute.min())
    # A position 20 m north of a node snaps to it, 20 m away, and the route's time counts the
    # 20 m at the access speed.
    k = int(net.n_nodes // 2)
    lat, lng = float(net.lat[k]) + 20 / 111_195, float(net.lng[k])
    node, dist = router.snap(lat, lng)
    assert node == k and dist == pytest.approx(20, abs=0.1)
    r = router.route(lat, lng, float(net.lat[k]), float(net.lng[k]))
    assert r.seconds == pytest.approx(dist / ACCESS_SPEED_MPS)


def test_one_way_streets_are_driven_one_way(router: Router) -> None:
    net = router.network
    edges = _edges(router)
    one_way = [(u, v) for u, v in edges if (v, u) not in edges]
    assert one_way, "West Oakland has one-way streets (oneway=yes)"
    for u, v in one_way:
        along = router.route(float(net.lat[u]), float(net.lng[u]), float(net.lat[v]),
                             float(net.lng[v]))
        back = router.route(float(net.lat[v]), float(net.lng[v]), float(net.lat[u]),
                            float(net.lng[u]))
        assert len(along.lat) == 4  # start, u, v, end: the edge itself
        assert back.metres > along.metres + 1.0


def test_pickup_etas_and_travel_agree_with_the_route(router: Router) -> None:
    pts = _points_between_nodes(router, 9, seed=3)
    (b_lat, b_lng), drivers = pts[0], pts[1:]
    etas = router.pickup_etas(drivers[:, 0].tolist(), drivers[:, 1].tolist(), b_lat, b_lng, 0.0)
    assert etas == pytest.approx([router.route(a, c, b_lat, b_lng).seconds for a, c in drivers])
    r = router.route(drivers[0][0], drivers[0][1], b_lat, b_lng)
    assert router.travel(drivers[0][0], drivers[0][1], b_lat, b_lng, 0.0) == pytest.approx(
        (r.seconds, r.metres))
    assert router.pickup_etas([], [], b_lat, b_lng, 0.0) == []


def test_candidates_for_one_pickup_share_one_shortest_path_tree() -> None:
    router = Router(load_road_network(OAKLAND))
    pts = _points_between_nodes(router, 11, seed=4)
    pickup = pts[0]
    for lat, lng in pts[1:]:
        router.pickup_etas([lat], [lng], pickup[0], pickup[1], 0.0)
    assert router.trees_computed == 1
    drive = router.route(pts[1][0], pts[1][1], pickup[0], pickup[1])  # the chosen driver
    assert router.trees_computed == 1
    # The quote, the drive and the meter ask for the same route: it is built once.
    assert router.route(pts[1][0], pts[1][1], pickup[0], pickup[1]) is drive


def test_a_point_far_off_the_network_is_refused_by_name(router: Router) -> None:
    lat, lng = 37.7749, -122.4194  # San Francisco, across the bay
    with pytest.raises(OffNetwork, match=r"m from the nearest road of west-oakland"):
        router.route(lat, lng, 37.8075, -122.3015)
    with pytest.raises(OffNetwork, match=r"\(37.774900, -122.419400\) is"):
        router.pickup_etas([37.8075, lat], [-122.3015, lng], 37.8075, -122.3015, 0.0)
    with pytest.raises(OffNetwork):
        router.travel(37.8075, -122.3015, lat, lng, 0.0)
    with pytest.raises(RoadError, match="not a WGS84 position"):
        router.route(math.nan, -122.3, 37.8075, -122.3015)
    with pytest.raises(RoadError, match="not a WGS84 position"):
        router.pickup_etas([37.8075, 95.0], [-122.3015, 0.0], 37.8075, -122.3015, 0.0)
    with pytest.raises(RoadError, match="not a WGS84 position"):
        router.snap(91.0, 0.0)


def test_off_the_network_the_fallback_answers() -> None:
    straight = StraightLineEta()
    router = Router(load_road_network(OAKLAND), fallback=straight)
    far = (37.7749, -122.4194)
    near = (37.8075, -122.3015)
    assert router.travel(*far, *near, 0.0) == straight.travel(*far, *near, 0.0)
    # One driver on the roads, one across the bay: each answered by its own model.
    etas = router.pickup_etas([near[0] + 0.001, far[0]], [near[1], far[1]], *near, 0.0)
    assert etas[0] == pytest.approx(router.route(near[0] + 0.001, near[1], *near).seconds)
    assert etas[1] == straight.pickup_etas([far[0]], [far[1]], *near, 0.0)[0]
    # A pickup off the roads: every driver by the fallback.
    assert router.pickup_etas([near[0]], [near[1]], *far, 0.0) == straight.pickup_etas(
        [near[0]], [near[1]], *far, 0.0)


def test_a_larger_snap_limit_takes_farther_points() -> None:
    router = Router(load_road_network(OAKLAND), max_snap_m=20_000)
    r = router.route(37.7749, -122.4194, 37.8075, -122.3015)
    assert r.metres > haversine_m(37.7749, -122.4194, 37.8075, -122.3015) - 1e-6
    with pytest.raises(ValueError, match="max_snap_m"):
        Router(router.network, max_snap_m=0)


def test_pbf_and_xml_extracts_of_one_city_give_one_network() -> None:
    pbf = load_road_network(ROADS / "aguascalientes.osm.pbf")
    xml = load_road_network(ROADS / "aguascalientes.osm.bz2")
    assert pbf.name == xml.name == "aguascalientes"
    assert (pbf.n_nodes, pbf.n_edges) == (xml.n_nodes, xml.n_edges)
    assert pbf.n_nodes > 1000
    assert pbf.total_km() == pytest.approx(xml.total_km())
    router = Router(pbf)
    min_lat, min_lng, max_lat, max_lng = pbf.bounds
    r = router.route(min_lat + 0.002, min_lng + 0.002, max_lat - 0.002, max_lng - 0.002)
    assert r.metres > haversine_m(min_lat + 0.002, min_lng + 0.002, max_lat - 0.002,
                                  max_lng - 0.002)


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("notes.osm", b"hello world\n", "not a readable OpenStreetMap file"),
    ("page.osm", b"<html><body>hi</body></html>\n", "not a readable OpenStreetMap file"),
    ("junk.osm.pbf", b"\x00\x01 not a pbf", "not a readable OpenStreetMap file"),
    ("junk.osm.bz2", bz2.compress(b"hello"), "not a readable OpenStreetMap file"),
    ("empty.osm", b'<?xml version="1.0"?><osm version="0.6"></osm>\n', "no drivable roads"),
    ("city.geojson", b'{"type": "FeatureCollection", "features": []}',
     "not an OpenStreetMap file name"),
])
def test_a_file_that_is_not_a_road_map_is_refused_by_name(tmp_path: Path, name: str,
                                                          content: bytes, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RoadError, match=problem) as err:
        load_road_network(path)
    assert str(path) in str(err.value)


def test_a_truncated_or_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    cut = tmp_path / "cut.osm.pbf"
    cut.write_bytes((ROADS / "aguascalientes.osm.pbf").read_bytes()[:3000])
    with pytest.raises(RoadError, match="cut.osm.pbf: not a readable OpenStreetMap file"):
        load_road_network(cut)
    with pytest.raises(RoadError, match="no such file"):
        load_road_network(tmp_path / "missing.osm")


def test_footways_alone_are_no_road_network(tmp_path: Path) -> None:
    text = bz2.decompress(OAKLAND.read_bytes()).decode()
    for cls in ("residential", "secondary", "service", "unclassified"):
        text = text.replace(f'v="{cls}"', 'v="footway"')
    path = tmp_path / "paths-only.osm"
    path.write_text(text)
    with pytest.raises(RoadError, match="no drivable roads"):
        load_road_network(path)
