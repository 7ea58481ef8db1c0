"""simulator.city: loading service areas from the real GeoJSON files, and bad input."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from simulator.city import City, CityError, data_dir, default_city_path, load_city

# The repository's copies (data/README.md), not $RIDEHAIL_DATA_DIR: the expectations below
# are about these exact files.
DATA = Path(__file__).resolve().parents[2] / "data"

TIMES_SQUARE = (40.7580, -73.9855)
NEWARK = (40.7357, -74.1724)  # New Jersey, outside the five boroughs
OPEN_SEA = (40.40, -73.50)


@cache
def nyc() -> City:
    return load_city(DATA / "nyc" / "boroughs.geojson")


def test_default_city_is_the_nyc_boroughs_shipped_in_the_repository(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RIDEHAIL_DATA_DIR", raising=False)
    assert data_dir() == DATA  # a fresh clone needs no folder beside it
    path = default_city_path()
    assert path == DATA / "nyc" / "boroughs.geojson"
    assert path.is_file()


def test_data_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("RIDEHAIL_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    assert default_city_path() == tmp_path / "nyc" / "boroughs.geojson"


def test_nyc_geometry_area_bounds_and_name() -> None:
    city = nyc()
    assert city.name == "nyc"
    assert city.area_km2 == pytest.approx(783.8, rel=0.02)  # NYC land area
    min_lat, min_lng, max_lat, max_lng = city.bounds
    assert 40.49 < min_lat < max_lat < 40.92
    assert -74.26 < min_lng < max_lng < -73.70
    assert city.contains(*city.centre)


def test_contains_single_and_vectorised() -> None:
    city = nyc()
    assert city.contains(*TIMES_SQUARE)
    assert not city.contains(*NEWARK)
    assert not city.contains(*OPEN_SEA)
    assert not city.contains(math.nan, -73.98)
    got = city.contains_many(
        [TIMES_SQUARE[0], NEWARK[0], math.nan], [TIMES_SQUARE[1], NEWARK[1], 0]
    )
    assert got.tolist() == [True, False, False]


def test_sample_points_inside_deterministic_and_spread() -> None:
    city = nyc()
    a = city.sample_points(2000, np.random.default_rng(7))
    b = city.sample_points(2000, np.random.default_rng(7))
    assert a.shape == (2000, 2)
    np.testing.assert_array_equal(a, b)
    assert city.contains_many(a[:, 0], a[:, 1]).all()
    # Uniform by area: Staten Island is about 151 of 784 km^2 (19 %); it lies south-west.
    staten = (a[:, 0] < 40.65) & (a[:, 1] < -74.05)
    assert 0.15 < staten.mean() < 0.23
    assert city.sample_points(0, np.random.default_rng(1)).shape == (0, 2)


@pytest.mark.parametrize(
    ("rel", "name", "area"),
    [("chicago/neighbourhoods.geojson", "chicago", 600), ("sf/neighbourhoods.geojson", "sf", 121)],
)
def test_other_cities_load(rel: str, name: str, area: float) -> None:
    city = load_city(DATA / rel)
    assert city.name == name
    assert city.area_km2 == pytest.approx(area, rel=0.05)


def test_outline_rings_are_closed_and_within_bounds() -> None:
    city = nyc()
    rings = city.outline()
    assert rings and all(len(r) >= 4 and r[0] == r[-1] for r in rings)
    min_lat, min_lng, max_lat, max_lng = city.bounds
    assert all(min_lat <= a <= max_lat and min_lng <= b <= max_lng for r in rings for a, b in r)


def _write(tmp_path: Path, name: str, doc: object) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return p


SQUARE = [[[-74.0, 40.7], [-73.9, 40.7], [-73.9, 40.8], [-74.0, 40.8], [-74.0, 40.7]]]


def test_bare_polygon_and_bowtie_repair(tmp_path: Path) -> None:
    city = load_city(_write(tmp_path, "square.geojson", {"type": "Polygon", "coordinates": SQUARE}))
    assert city.name == "square"
    assert city.contains(40.75, -73.95)
    bowtie = [[[-74.0, 40.7], [-73.9, 40.8], [-73.9, 40.7], [-74.0, 40.8], [-74.0, 40.7]]]
    feature = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Polygon", "coordinates": bowtie},
    }
    city = load_city(_write(tmp_path, "bowtie.geojson", feature), name="bow")
    assert city.name == "bow" and city.area_km2 > 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not GeoJSON"),
        ([1, 2, 3], "not GeoJSON"),
        ({"type": "FeatureCollection"}, "features"),
        (
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}}
                ],
            },
            "no Polygon",
        ),
        ({"type": "Polygon", "coordinates": "nope"}, "malformed"),
        ({"type": "Polygon", "coordinates": [[[0, 100], [1, 100], [1, 101], [0, 100]]]}, "WGS84"),
    ],
)
def test_bad_city_files_raise_clear_errors(tmp_path: Path, content: object, message: str) -> None:
    path = _write(tmp_path, "bad.geojson", content)
    with pytest.raises(CityError, match=message) as info:
        load_city(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_city_file(tmp_path: Path) -> None:
    with pytest.raises(CityError, match="not found"):
        load_city(tmp_path / "nope.geojson")
