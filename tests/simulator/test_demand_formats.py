"""simulator.demand: reading the real demand files, rejecting dirty rows, clear errors."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import pytest

from simulator.city import City, load_city
from simulator.demand import (
    DEFAULT_TRIP_LENGTH,
    FORMATS,
    REJECT_REASONS,
    DemandData,
    DemandError,
    detect_format,
    fit_trip_length,
    load_demand,
)

# The repository's copies (data/README.md), not $RIDEHAIL_DATA_DIR: the expectations below
# are about these exact files.
DATA = Path(__file__).resolve().parents[2] / "data"

YELLOW = "nyc/yellow_taxi_2016-01_sample.csv"
GREEN = "nyc/green_taxi_2016-01_sample.csv"
UBER = "nyc/uber_pickups_2014-04_sample.csv"
CHICAGO = "chicago/taxi_trips_sample.csv"
CITY_OF = {
    YELLOW: "nyc/boroughs.geojson",
    GREEN: "nyc/boroughs.geojson",
    UBER: "nyc/boroughs.geojson",
    CHICAGO: "chicago/neighbourhoods.geojson",
}


@cache
def city(rel: str) -> City:
    return load_city(DATA / rel)


@cache
def demand(rel: str) -> DemandData:
    return load_demand(DATA / rel, city(CITY_OF[rel]))


@pytest.mark.parametrize(
    ("rel", "name"),
    [
        (YELLOW, "nyc_yellow_2016"),
        (GREEN, "nyc_green_2016"),
        (UBER, "uber_2014"),
        (CHICAGO, "chicago_taxi"),
    ],
)
def test_format_detected_from_real_header(rel: str, name: str) -> None:
    with (DATA / rel).open(newline="") as fh:
        header = next(csv.reader(fh))
    assert detect_format(header).name == name
    assert demand(rel).format.name == name


# Pinned on the real files; the README documents the 98 yellow rows with 0.0 coordinates.
EXPECTED = {
    YELLOW: (5000, {"zero_coords": 98, "zero_length": 7, "outside_city": 27}),
    GREEN: (5000, {"zero_coords": 7, "zero_length": 32, "outside_city": 13}),
    UBER: (10000, {"outside_city": 223}),
    CHICAGO: (15002, {"missing_coords": 483, "zero_length": 877}),
}


@pytest.mark.parametrize("rel", list(EXPECTED))
def test_rejection_counts_on_real_files(rel: str) -> None:
    rows, nonzero = EXPECTED[rel]
    data = demand(rel)
    assert data.rows_read == rows
    assert data.rejected == {reason: nonzero.get(reason, 0) for reason in REJECT_REASONS}
    assert len(data.records) == rows - sum(nonzero.values())


@pytest.mark.parametrize("rel", list(EXPECTED))
def test_accepted_records_are_clean_and_sorted(rel: str) -> None:
    data = demand(rel)
    c = city(CITY_OF[rel])
    recs = data.records
    assert [r.start_s for r in recs] == sorted(r.start_s for r in recs)
    assert c.contains_many([r.pickup_lat for r in recs], [r.pickup_lng for r in recs]).all()
    assert all(r.pickup_lat != 0 and r.pickup_lng != 0 for r in recs)
    assert all(r.duration_s is None or r.duration_s > 0 for r in recs)
    assert all(0 <= r.time_of_day_s < 86400 for r in recs)
    with_drop = [r for r in recs if r.dropoff_lat is not None]
    assert c.contains_many(
        [r.dropoff_lat for r in with_drop], [r.dropoff_lng for r in with_drop]
    ).all()
    if rel == UBER:
        assert not with_drop and all(r.distance_km is None for r in recs)
    else:
        assert len(with_drop) == len(recs)


def test_times_are_local_wall_clock() -> None:
    # Chicago's epoch stamps encode local time: their hour is the file's trip_start_hour.
    with (DATA / CHICAGO).open(newline="") as fh:
        hours = {i + 2: int(row["trip_start_hour"]) for i, row in enumerate(csv.DictReader(fh))}
    assert all(r.time_of_day_s // 3600 == hours[r.row] for r in demand(CHICAGO).records)
    yellow = {r.row: r for r in demand(YELLOW).records}
    assert yellow[2].time_of_day_s == 12 * 3600 + 9 * 60 + 13  # 2016-01-06 12:09:13
    assert yellow[2].duration_s == 13 * 60 + 1
    assert yellow[2].distance_km == pytest.approx(2.09 * 1.609344)
    uber = {r.row: r for r in demand(UBER).records}
    assert uber[2].time_of_day_s == 22 * 3600 + 18 * 60  # 4/5/2014 22:18


def test_default_trip_length_model_matches_the_data() -> None:
    fitted = fit_trip_length(demand(YELLOW).records + demand(GREEN).records)
    assert fitted.mu == pytest.approx(DEFAULT_TRIP_LENGTH.mu, abs=0.01)
    assert fitted.sigma == pytest.approx(DEFAULT_TRIP_LENGTH.sigma, abs=0.01)


YELLOW_HEADER = (
    "vendorID,tpepPickupDateTime,tpepDropoffDateTime,passengerCount,tripDistance,puLocationId,"
    "doLocationId,startLon,startLat,endLon,endLat,rateCodeId,storeAndFwdFlag,paymentType,"
    "fareAmount,extra,mtaTax,improvementSurcharge,tipAmount,tollsAmount,totalAmount"
)


def _yellow_row(pick: str, drop: str, dist: str, slon: str, slat: str, elon: str, elat: str) -> str:
    return f"2,{pick},{drop},1,{dist},,,{slon},{slat},{elon},{elat},1,N,1,10.5,0,0.5,0.3,0,0,11.3"


def test_dirty_rows_each_counted_once(tmp_path: Path) -> None:
    good = (
        "2016-01-06 12:09:13",
        "2016-01-06 12:22:14",
        "2.09",
        "-73.982",
        "40.746",
        "-74.004",
        "40.730",
    )
    rows = [
        _yellow_row(*good),
        _yellow_row("2016-01-06 25:99:00", *good[1:]),  # bad time
        _yellow_row(*good[:3], "abc", *good[4:]),  # bad number
        _yellow_row(*good[:3], "nan", *good[4:]),  # NaN
        "2,2016-01-06 12:09:13,too,few,fields",
        _yellow_row(*good[:3], "", *good[4:]),  # empty coordinate
        _yellow_row(*good[:3], "0.0", "0.0", *good[5:]),  # no GPS fix
        _yellow_row(good[0], "2016-01-06 12:00:00", *good[2:]),  # dropoff before pickup
        _yellow_row(good[0], good[0], *good[2:]),  # 0 s
        _yellow_row(*good[:2], "0", "-73.982", "40.746", "-73.982", "40.746"),  # went nowhere
        _yellow_row(*good[:3], "-74.1724", "40.7357", *good[5:]),  # Newark
        _yellow_row(*good[:5], "-73.0", "95.0"),  # latitude out of range
        "",  # blank lines are skipped, not counted
    ]
    path = tmp_path / "dirty.csv"
    path.write_text(YELLOW_HEADER + "\n" + "\n".join(rows) + "\n")
    data = load_demand(path, city("nyc/boroughs.geojson"))
    assert len(data.records) == 1 and data.records[0].row == 2
    assert data.rejected == {
        "unparsable": 4,
        "missing_coords": 1,
        "zero_coords": 1,
        "dropoff_before_pickup": 1,
        "zero_length": 2,
        "outside_city": 2,
    }
    assert data.rows_read == 12


def test_uber_time_with_seconds(tmp_path: Path) -> None:
    path = tmp_path / "uber.csv"
    path.write_text(
        'Date/Time,Lat,Lon,Base\n"4/1/2014 0:11:00",40.769,-73.9549,B02512\n'
        "4/1/2014 7:05,40.7594,-73.9641,B02512\n13/45/2014 7:05,40.7,-73.9,B\n"
    )
    data = load_demand(path, city("nyc/boroughs.geojson"))
    assert [r.time_of_day_s for r in data.records] == [11 * 60, 7 * 3600 + 5 * 60]
    assert data.rejected["unparsable"] == 1


def test_unknown_header_lists_known_formats(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("when,where\n2016-01-01,here\n")
    with pytest.raises(DemandError, match="unknown demand CSV header") as info:
        load_demand(path, city("nyc/boroughs.geojson"))
    assert all(name in str(info.value) for name in FORMATS)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\xff\xfe\x00\x01garbage\x00\xff", "UTF-8")],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DemandError, match=message):
        load_demand(path, city("nyc/boroughs.geojson"))


def test_missing_demand_file(tmp_path: Path) -> None:
    with pytest.raises(DemandError, match="not found"):
        load_demand(tmp_path / "none.csv", city("nyc/boroughs.geojson"))
