"""The learned travel-time model: the fit, its file, refused rows, where the API falls back to
the straight line, and that dispatch, nearby and the quote use it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dispatch.eta import StraightLineEta
from dispatch.learned_eta import (
    FORMAT_VERSION,
    SHIPPED,
    LearnedEta,
    ModelFileError,
    Trees,
    features,
    load,
    read_meta,
    save,
)
from dispatch.live_eta import LiveEta
from ridehail.bootstrap import build_engine, eta_model
from ridehail.cli import main
from ridehail.kernel.geo import haversine_m
from ridehail.settings import Settings, SettingsError
from ridehail.units import memory_uow_factory
from simulator.city import data_dir
from simulator.eta_fit import fit_model, read_trips
from trips.fares import NYC_YELLOW_2016
from trips.pricing import quote

ROOT = Path(__file__).resolve().parents[2]
YELLOW = data_dir() / "nyc" / "yellow_taxi_2016-01_sample.csv"
PICKUP, DROPOFF = (40.7580, -73.9855), (40.7061, -74.0087)  # Times Square -> Wall Street
WHEN = 1_452_700_800.0  # 2016-01-13 16:00 UTC, 11:00 in New York


@pytest.fixture(scope="module")
def small_model() -> LearnedEta:
    return fit_model(read_trips([YELLOW], limit=800))


def test_a_fitted_model_survives_its_file_and_beats_the_straight_line(
        small_model: LearnedEta, tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    save(path, small_model.pace, small_model.detour, small_model.areas, small_model.meta)
    again = load(path)
    assert again.meta["version"] == FORMAT_VERSION
    assert again.meta["timezone"] == "America/New_York"
    trips = read_trips([YELLOW], limit=800)
    before = small_model.predict(trips.plat, trips.plng, trips.dlat, trips.dlng, trips.local_s)
    after = again.predict(trips.plat, trips.plng, trips.dlat, trips.dlng, trips.local_s)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    line = np.array([StraightLineEta().travel(a, b, c, d)[0] for a, b, c, d in
                     zip(trips.plat, trips.plng, trips.dlat, trips.dlng, strict=True)])
    err = np.median(np.abs(after[0] - trips.duration_s) / trips.duration_s)
    assert err < np.median(np.abs(line - trips.duration_s) / trips.duration_s)
    assert again.travel(*PICKUP, *PICKUP, WHEN)[0] == 0.0  # a driver at the pickup is there
    # The local hour matters: the same drive at 05:00 is faster than at 17:00 on a weekday.
    early = again.travel(*PICKUP, *DROPOFF, WHEN - 6 * 3600)[0]
    rush = again.travel(*PICKUP, *DROPOFF, WHEN + 6 * 3600)[0]
    assert early < rush


def _walk_node_by_node(trees: Trees, x: np.ndarray) -> np.ndarray:
    """The file's trees walked as they are written: left when x <= threshold, else right."""
    out = []
    for row in x:
        s = trees.baseline
        for root in trees.roots.tolist():
            node = root
            while trees.left[node] >= 0:
                node = (trees.left[node] if row[trees.feature[node]] <= trees.threshold[node]
                        else trees.right[node])
            s += trees.value[node]
        out.append(s)
    return np.array(out)


@pytest.mark.parametrize("which", ["shipped", "small"])
def test_the_compiled_walk_sums_exactly_the_leaves_the_files_trees_reach(
        which: str, request: pytest.FixtureRequest) -> None:
    """The walk reads the trees re-laid for speed (children side by side, trees in lockstep,
    padded); each prediction must still be the file's trees' sum, bit for bit, and so must the
    fused paths a request takes (one drive, and many drivers to one pickup)."""
    model = load(SHIPPED["nyc"]) if which == "shipped" else request.getfixturevalue("small_model")
    rng = np.random.default_rng(5)
    n = 300
    plat, dlat = rng.uniform(40.58, 40.90, n), rng.uniform(40.58, 40.90, n)
    plng, dlng = rng.uniform(-74.10, -73.75, n), rng.uniform(-74.10, -73.75, n)
    when = WHEN + rng.uniform(0, 7 * 86400, n)
    local = np.array([model.local_s(w) for w in when])
    x, d = features(plat, plng, dlat, dlng, local, model.areas, model.holidays)
    for trees in (model.pace, model.detour):
        assert np.array_equal(trees.predict(x), _walk_node_by_node(trees, x))
    pace, detour = _walk_node_by_node(model.pace, x), _walk_node_by_node(model.detour, x)
    seconds, metres = model.predict(plat, plng, dlat, dlng, local)
    assert np.allclose(seconds, np.exp(pace) * d, rtol=1e-14, atol=0)
    assert np.allclose(metres, np.exp(detour) * d, rtol=1e-14, atol=0)
    drives = np.array([model.travel(plat[i], plng[i], dlat[i], dlng[i], when[i])
                       for i in range(n)])
    assert np.allclose(drives[:, 0], np.exp(pace) * d, rtol=1e-14, atol=0)
    assert np.allclose(drives[:, 1], np.exp(detour) * d, rtol=1e-14, atol=0)
    x1, d1 = features(plat[:12], plng[:12], np.full(12, dlat[0]), np.full(12, dlng[0]),
                      local[0], model.areas, model.holidays)
    etas = model.pickup_etas(plat[:12].tolist(), plng[:12].tolist(), dlat[0], dlng[0], when[0])
    assert np.allclose(etas, np.exp(_walk_node_by_node(model.pace, x1)) * d1, rtol=1e-14,
                       atol=0)


def test_a_holiday_is_predicted_as_a_sunday_and_its_calendar_travels_in_the_file(
        small_model: LearnedEta, tmp_path: Path) -> None:
    """Traffic on a public holiday moves as on a Sunday (the NYC sample: 0.222 s a metre on
    New Year's Day and Martin Luther King Day, 0.229 on Sundays, 0.292 on other weekdays)."""
    assert "2016-01-18" in small_model.meta["holidays"]  # Martin Luther King Jr. Day
    mlk_11am, sunday_11am, tuesday_11am = 1_453_132_800.0, 1_453_046_400.0, 1_453_219_200.0
    on = [small_model.travel(*PICKUP, *DROPOFF, t) for t in (mlk_11am, sunday_11am,
                                                            tuesday_11am)]
    assert on[0] == on[1] != on[2]
    # A model whose calendar is empty takes the same Monday as a working day.
    plain = fit_model(read_trips([YELLOW], limit=800), "none")
    assert plain.meta["holidays"] == []
    assert plain.travel(*PICKUP, *DROPOFF, mlk_11am) != plain.travel(*PICKUP, *DROPOFF,
                                                                      sunday_11am)
    path = tmp_path / "m.npz"
    save(path, small_model.pace, small_model.detour, small_model.areas, small_model.meta)
    assert load(path).travel(*PICKUP, *DROPOFF, mlk_11am) == on[0]
    save(path, small_model.pace, small_model.detour, small_model.areas,
         {**small_model.meta, "holidays": ["2016-13-40"]})
    with pytest.raises(ModelFileError, match="holidays must be a list of ISO dates"):
        load(path)


def test_a_file_of_another_version_is_refused_naming_it(small_model: LearnedEta,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    meta = {**small_model.meta}
    save(path, small_model.pace, small_model.detour, small_model.areas, meta)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["meta"]))
    header["version"] = FORMAT_VERSION + 1
    arrays["meta"] = np.array(json.dumps(header))
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    for reader in (load, read_meta):
        with pytest.raises(ModelFileError, match=f"format version {FORMAT_VERSION + 1}"):
            reader(path)
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not an ETA model file"):
        load(tmp_path / "junk.npz")
    with pytest.raises(SettingsError, match="RIDEHAIL_ETA_MODEL"):
        Settings.from_env({"RIDEHAIL_ETA_MODEL": str(path)})


def test_dirty_rows_are_refused_and_counted(tmp_path: Path) -> None:
    with YELLOW.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, good = rows[0], rows[1:201]
    col = {name: i for i, name in enumerate(header)}

    def bad(**changes: str) -> list[str]:
        row = list(good[0])
        for name, value in changes.items():
            row[col[name]] = value
        return row

    dirty = [
        bad(startLat="0.0"),  # no GPS fix
        bad(tpepPickupDateTime="yesterday"),  # unparsable
        bad(tpepDropoffDateTime="2016-01-07 12:09:13"),  # a day long: a clock fault
        bad(tpepDropoffDateTime="2016-01-06 12:09:20"),  # 7 s: implausible
        bad(tpepDropoffDateTime="2016-01-06 12:09:43"),  # 2.6 km in 30 s: 86 m/s
        bad(tripDistance="40"),  # 40 miles for a 2.6 km straight line
    ]
    path = tmp_path / "dirty.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *good, *dirty])
    out = tmp_path / "m.npz"
    res = CliRunner().invoke(main, ["eta", "fit", "--demand", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    done = json.loads(res.output)
    assert done["rejected"]["zero_coords"] >= 1 and done["rejected"]["unparsable"] == 1
    assert done["rejected"]["implausible_duration"] >= 2
    assert done["rejected"]["implausible_speed"] >= 1
    assert done["rejected"]["implausible_distance"] >= 1
    assert done["rows_read"] == 206
    assert done["trips_used"] + sum(done["rejected"].values()) == 206
    assert load(out).meta["trips"] == done["trips_used"]


def test_pickups_without_dropoffs_cannot_be_fitted(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["eta", "fit", "--demand",
                                    str(data_dir() / "nyc" / "uber_pickups_2014-04_sample.csv"),
                                    "--out", str(tmp_path / "m.npz")])
    assert res.exit_code == 1 and "no_dropoff" in res.output
    assert not (tmp_path / "m.npz").exists()


def test_the_api_falls_back_to_the_straight_line_without_a_model(tmp_path: Path) -> None:
    # The default (NYC) service area gets the shipped model, and the API's engine uses it...
    assert isinstance(eta_model(Settings.from_env({})), LearnedEta)
    engine, _, _ = build_engine(Settings.from_env({}), memory_uow_factory(), start=False)
    assert isinstance(engine.eta, LiveEta) and engine.matcher.eta is engine.eta
    assert isinstance(engine.eta.model, LearnedEta)
    assert Settings.from_env({}).eta_model_path() == SHIPPED["nyc"]
    # ...another city, or the explicit choice, the straight line.
    area = tmp_path / "elsewhere.geojson"
    area.write_text((ROOT / "data" / "chicago" / "neighbourhoods.geojson").read_text())
    elsewhere = Settings.from_env({"RIDEHAIL_SERVICE_AREA": str(area)})
    assert elsewhere.eta_model_path() is None
    assert isinstance(eta_model(elsewhere), StraightLineEta)
    line = Settings.from_env({"RIDEHAIL_ETA_MODEL": "straight-line"})
    assert isinstance(eta_model(line), StraightLineEta)
    with pytest.raises(SettingsError, match="RIDEHAIL_ETA_MODEL: ETA model file not found"):
        Settings.from_env({"RIDEHAIL_ETA_MODEL": str(tmp_path / "missing.npz")})


def test_dispatch_nearby_and_the_quote_use_the_model() -> None:
    from tests.dispatch.test_engine_rules import make_kit

    model = load(SHIPPED["nyc"])
    kit, plain = make_kit(eta=model), make_kit()
    for k in (kit, plain):
        k.clock._now = WHEN
        k.driver("1", 1500)
    here = kit.engine.index.snapshot().nearest(*PICKUP, k=1, radius_m=3000)[0]
    (_, shown), = kit.engine.nearby(*PICKUP, 3000, 5)
    expected = model.pickup_etas([here.lat], [here.lng], *PICKUP, WHEN)[0]
    line = StraightLineEta().pickup_etas([here.lat], [here.lng], *PICKUP, WHEN)[0]
    assert shown == pytest.approx(expected) and abs(expected - line) > 10
    trip = kit.engine.request_trip("50", PICKUP, DROPOFF)
    offer, = kit.engine.pending_offers("1")
    assert offer.eta_s == pytest.approx(expected, abs=0.1)
    priced = quote(NYC_YELLOW_2016, PICKUP, DROPOFF, Decimal(trip.surge),
                   model.travel(*PICKUP, *DROPOFF, WHEN))
    assert trip.fare_estimate == priced.total
    assert plain.engine.request_trip("50", PICKUP, DROPOFF).fare_estimate != priced.total
    # The meter compares the trace with the route the quote was priced on, the model's: a
    # drive as the crow flies is materially (25%) shorter than the model's road distance,
    # though not than the tariff's own straight line x 1.27.
    seconds, road_m = model.travel(*PICKUP, *DROPOFF, WHEN)
    straight = haversine_m(*PICKUP, *DROPOFF)
    assert road_m * 0.75 > straight > float(NYC_YELLOW_2016.detour_factor) * straight * 0.75
    kit.engine.accept_offer(offer.id, "1")
    kit.engine.arrive(trip.id, "1")
    kit.engine.start(trip.id, "1")
    kit.clock._now += seconds
    kit.engine.update_location("1", *DROPOFF, kit.clock.now())
    done = kit.engine.complete(trip.id, "1")
    assert done.fare_rule == "metered_shorter"


def test_the_reduced_benchmark_runs() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "eta.py"), "--quick"],
                         capture_output=True, text=True, timeout=280, check=True)
    doc = json.loads(out.stdout)
    s = doc["summary"]
    for key in ("median_abs_pct_error", "p90_abs_pct_error", "rmsle",
                "fare_estimate_median_abs_pct_error"):
        assert s[key] is not None and s["straight_line"][key] is not None
    assert s["median_abs_pct_error"] < s["straight_line"]["median_abs_pct_error"]
    assert s["rmsle"] < s["straight_line"]["rmsle"]
    assert doc["chicago"]["model"]["rmsle"] < doc["chicago"]["straight_line"]["rmsle"]


def test_a_file_that_is_not_trips_names_the_flag(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["eta", "fit", "--demand", str(ROOT / "README.md"),
                                    "--out", str(tmp_path / "m.npz")])
    assert res.exit_code == 2 and "--demand" in res.output and "unknown demand CSV header" in \
        res.output
    res = CliRunner().invoke(main, ["eta", "fit", "--demand", str(YELLOW),
                                    "--out", str(tmp_path / "no" / "such" / "m.npz")])
    assert res.exit_code == 2 and "--out" in res.output
