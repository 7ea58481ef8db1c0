"""The partition map: owners of points, and the shards a query disk touches near an edge."""

from __future__ import annotations

import h3
import pytest

from dispatch.partition import PartitionMap


def _two_shards() -> tuple[PartitionMap, str, str]:
    centre = h3.latlng_to_cell(40.7549, -73.9840, 4)
    pm = PartitionMap(4)
    pm.assign([centre], "nyc-core")
    ring = [c for c in h3.grid_disk(centre, 1) if c != centre]
    pm.assign(ring, "nyc-outer")
    return pm, centre, ring[0]


def test_owner_of_a_point() -> None:
    pm, _centre, _ = _two_shards()
    assert pm.shard_of(40.7549, -73.9840) == "nyc-core"
    assert pm.shard_of(-33.86, 151.21) is None  # Sydney: nobody's


def test_a_small_query_at_the_cell_centre_touches_one_shard() -> None:
    pm, centre, _ = _two_shards()
    lat, lng = h3.cell_to_latlng(centre)
    assert pm.shards_for_query(lat, lng, 1000) == {"nyc-core"}
    assert pm.cells_for_query(lat, lng, 1000) == {centre}


def test_a_query_near_the_edge_touches_the_neighbour() -> None:
    pm, centre, _ = _two_shards()
    (b_lat, b_lng), (c_lat, c_lng) = h3.cell_to_boundary(centre)[0], h3.cell_to_latlng(centre)
    # 99 % of the way from the centre to a vertex: inside, about 100 m from the boundary.
    lat, lng = c_lat + 0.99 * (b_lat - c_lat), c_lng + 0.99 * (b_lng - c_lng)
    assert pm.shard_of(lat, lng) == "nyc-core"
    assert pm.shards_for_query(lat, lng, 2000) == {"nyc-core", "nyc-outer"}
    assert pm.shards_for_query(lat, lng, 10) == {"nyc-core"}


def test_a_large_radius_reaches_two_rings() -> None:
    pm, centre, _ = _two_shards()
    lat, lng = h3.cell_to_latlng(centre)
    far = pm.cells_for_query(lat, lng, 60_000)
    assert set(h3.grid_disk(centre, 1)) <= far
    assert len(far) > 7


def test_from_areas_covers_a_polygon_and_rejects_bad_input() -> None:
    square = {"type": "Polygon", "coordinates": [[[-74.05, 40.6], [-73.9, 40.6],
                                                  [-73.9, 40.85], [-74.05, 40.85],
                                                  [-74.05, 40.6]]]}
    pm = PartitionMap.from_areas({"nyc": square})
    assert pm.shard_of(40.7549, -73.9840) == "nyc" and pm.shards() == {"nyc"}
    with pytest.raises(ValueError, match="radius_m"):
        pm.cells_for_query(40.75, -73.98, float("nan"))
    with pytest.raises(ValueError, match="resolution"):
        pm.assign([h3.latlng_to_cell(40.75, -73.98, 5)], "x")
