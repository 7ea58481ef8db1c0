"""Which ways a car drives, which way, and how fast (roads/speeds.py)."""

from __future__ import annotations

import pytest

from roads.speeds import SPEED_KMH, directions, is_drivable, maxspeed_kmh, speed_mps


@pytest.mark.parametrize(("value", "kmh"), [
    ("50", 50.0), ("30 mph", 30 * 1.609344), ("50;30", 50.0), (" 40 km/h ", 40.0),
    ("none", None), ("signals", None), ("DE:urban", None), ("", None), (None, None), ("0", None),
])
def test_maxspeed_is_read_in_kmh(value: str | None, kmh: float | None) -> None:
    got = maxspeed_kmh(value)
    assert got == (pytest.approx(kmh) if kmh is not None else None)


def test_speed_comes_from_maxspeed_where_tagged_else_from_the_road_class() -> None:
    assert speed_mps({"highway": "residential"}) == pytest.approx(SPEED_KMH["residential"] / 3.6)
    assert speed_mps({"highway": "primary"}) > speed_mps({"highway": "residential"})
    assert speed_mps({"highway": "residential", "maxspeed": "50"}) == pytest.approx(
        50 * 0.8 / 3.6)
    assert speed_mps({"highway": "primary", "maxspeed": "urban"}) == pytest.approx(
        SPEED_KMH["primary"] / 3.6)


@pytest.mark.parametrize(("tags", "drivable"), [
    ({"highway": "residential"}, True),
    ({"highway": "service"}, True),
    ({"highway": "footway"}, False),
    ({"highway": "pedestrian"}, False),
    ({"highway": "path"}, False),
    ({"highway": "residential", "access": "private"}, False),
    ({"highway": "primary", "motor_vehicle": "no"}, False),
    ({"highway": "service", "area": "yes"}, False),
    ({"building": "yes"}, False),
])
def test_only_roads_a_car_may_use_are_drivable(tags: dict[str, str], drivable: bool) -> None:
    assert is_drivable(tags) is drivable


@pytest.mark.parametrize(("tags", "ways"), [
    ({"highway": "residential"}, (True, True)),
    ({"highway": "residential", "oneway": "yes"}, (True, False)),
    ({"highway": "residential", "oneway": "-1"}, (False, True)),
    ({"highway": "motorway"}, (True, False)),
    ({"highway": "motorway", "oneway": "no"}, (True, True)),
    ({"highway": "primary", "junction": "roundabout"}, (True, False)),
])
def test_one_way_tags(tags: dict[str, str], ways: tuple[bool, bool]) -> None:
    assert directions(tags) == ways
