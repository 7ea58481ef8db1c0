"""Travel-time accuracy: the learned model (`ridehail eta fit`) against the straight line, on
real trips it did not see; prints one JSON document.

    .venv/bin/python bench/eta.py [--out FILE]      # fit on NYC yellow and Chicago, test
    .venv/bin/python bench/eta.py --csv FILE        # the shipped NYC model on another file
    .venv/bin/python bench/eta.py --quick           # the reduced run of the test suite

Each city's trips (the yellow-cab sample, Chicago's taxi sample; `RIDEHAIL_DATA_DIR` moves
them) are read by the simulator's readers, refused rows counted, and split by time: the
earlier 80% fit a model (`simulator.eta_fit.fit_model`), the later 20% test it. On the test
trips, the duration's `median_abs_pct_error`, `p90_abs_pct_error` and `rmsle` (Kaggle's:
log1p), and the same figures of the straight line dispatch used before (x 1.3 at 8 m/s).
`fare_estimate_median_abs_pct_error` (NYC): the upfront quote (`trips.pricing.quote`, the NYC
2016 tariff, no surge) from pickup, dropoff and request time alone, against the metered
`fareAmount`, on the standard-rate (`rateCodeId` 1) test trips; the straight line's quote
priced on the tariff's own straight line beside it. `--csv` evaluates the shipped NYC model
(dispatch/data/eta_nyc.npz) on every trip of another NYC file (yellow or green), without
refitting; the summary then holds that file's figures under the same keys.

`model_live` (and the summary's `live_correction`): the same model as the API serves it by
default, corrected by the rides it has seen end (dispatch/live_eta.py, RIDEHAIL_ETA_LIVE_*
defaults). The correction starts empty at the first test trip and learns each test trip only
once it has ended (a replay in time order), as the API would; the summary's top-level keys stay
the fitted model's own.

Also timed, as a ratio in the same run: a batch of 10 pickup ETAs, model against line.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import describe  # noqa: E402
from dispatch.eta import EtaModel, StraightLineEta  # noqa: E402
from dispatch.learned_eta import SHIPPED, load  # noqa: E402
from dispatch.live_eta import LiveCorrection, LiveEta  # noqa: E402
from ridehail.settings import Settings  # noqa: E402
from simulator.city import data_dir  # noqa: E402
from simulator.eta_fit import TripTable, fit_model, read_trips  # noqa: E402
from trips.fares import NYC_YELLOW_2016  # noqa: E402
from trips.pricing import quote  # noqa: E402

NYC = data_dir() / "nyc" / "yellow_taxi_2016-01_sample.csv"
CHICAGO = data_dir() / "chicago" / "taxi_trips_sample.csv"
TARGETS = {"median_abs_pct_error": 20.0, "rmsle": 0.35, "fare_estimate_median_abs_pct_error": 8.0}
QUICK_ROWS = 1500


def _when(model: EtaModel, local_s: float) -> float:
    """The UTC time whose local wall-clock time is `local_s` (the records keep local time)."""
    zone = getattr(model, "local_s", None)
    if zone is None:
        return local_s
    return local_s - (zone(local_s) - local_s)  # an hour off only across a DST change


def routes(model: EtaModel, trips: TripTable) -> np.ndarray:
    """(seconds, road metres) of each trip, as `model` answers at its request time."""
    return np.array([model.travel(a, b, c, d, _when(model, t)) for a, b, c, d, t in zip(
        trips.plat.tolist(), trips.plng.tolist(), trips.dlat.tolist(), trips.dlng.tolist(),
        trips.local_s.tolist(), strict=True)]).reshape(-1, 2)


def live_routes(model: EtaModel, trips: TripTable) -> tuple[np.ndarray, LiveEta]:
    """`routes` as the API serves them by default: `model` with the live correction
    (dispatch/live_eta.py, the API's settings), which starts empty at the first test trip and
    learns from each test trip once it has ended, never before: the trips are replayed in time
    order, an ending before a request at the same second."""
    live = LiveEta(model, LiveCorrection(half_life_s=Settings().eta_live_half_life_s))
    start = np.array([_when(model, t) for t in trips.local_s.tolist()])
    end = start + trips.duration_s
    events = sorted([(float(e), 0, i) for i, e in enumerate(end)]
                    + [(float(s), 1, i) for i, s in enumerate(start)])
    out = np.empty((len(trips), 2))
    for at, kind, i in events:
        a, b = (trips.plat[i], trips.plng[i]), (trips.dlat[i], trips.dlng[i])
        if kind == 0:
            live.observe_ride(a, b, float(start[i]), at)
        else:
            out[i] = live.travel(*a, *b, at)
    return out, live


def errors(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    ape = np.abs(predicted - actual) / actual * 100
    return {
        "median_abs_pct_error": round(float(np.median(ape)), 1),
        "p90_abs_pct_error": round(float(np.quantile(ape, 0.9)), 1),
        "rmsle": round(float(np.sqrt(np.mean((np.log1p(predicted) - np.log1p(actual)) ** 2))),
                       3),
        "median_predicted_over_actual": round(float(np.median(predicted / actual)), 3),
    }


def fares_by_line(path: Path) -> dict[int, tuple[str, float]]:
    """line -> (rate code, fareAmount) of a yellow or green file (None: not a cab file)."""
    out: dict[int, tuple[str, float]] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        names = reader.fieldnames or []
        rate = "rateCodeId" if "rateCodeId" in names else "rateCodeID"
        if "fareAmount" not in names or rate not in names:
            return out
        for row in reader:
            try:
                out[reader.line_num] = (row[rate].strip(), float(row["fareAmount"]))
            except (ValueError, AttributeError):
                continue
    return out


def fare_errors(routes: np.ndarray | None, trips: TripTable,
                fares: dict[int, tuple[str, float]]) -> dict[str, Any]:
    """The upfront quote (priced on `routes`, else the tariff's own straight line) against the
    metered fare, standard-rate trips with a fare."""
    ape, skipped = [], {"non_standard_rate": 0, "no_fare": 0}
    for i in range(len(trips)):
        rate, fare = fares.get(int(trips.line[i]), ("", 0.0))
        if rate != "1":
            skipped["non_standard_rate"] += 1
            continue
        if fare <= 0:
            skipped["no_fare"] += 1
            continue
        p, d = (trips.plat[i], trips.plng[i]), (trips.dlat[i], trips.dlng[i])
        route = None if routes is None else (float(routes[i, 0]), float(routes[i, 1]))
        q = quote(NYC_YELLOW_2016, p, d, Decimal(1), route)
        ape.append(abs(q.total - fare * 100) / (fare * 100) * 100)
    if not ape:
        return {"trips": 0, "skipped": skipped}
    return {"trips": len(ape), "skipped": skipped,
            "median_abs_pct_error": round(float(np.median(ape)), 1),
            "p90_abs_pct_error": round(float(np.quantile(ape, 0.9)), 1)}


def evaluate(model: EtaModel, trips: TripTable, fares: dict[int, tuple[str, float]] | None
             ) -> dict[str, Any]:
    """The model's figures, the same model's with the live correction, the straight line's."""
    out: dict[str, Any] = {"test_trips": len(trips)}
    live, corrector = live_routes(model, trips)
    has = np.isfinite(trips.road_m)
    for name, r in (("model", routes(model, trips)), ("model_live", live),
                    ("straight_line", routes(StraightLineEta(), trips))):
        out[name] = errors(r[:, 0], trips.duration_s)
        if has.any():
            out[name]["distance_median_abs_pct_error"] = round(float(np.median(
                np.abs(r[has, 1] - trips.road_m[has]) / trips.road_m[has] * 100)), 1)
        if fares:
            # The straight line's quote is the tariff's own (x 1.27 at 5 m/s), as before.
            out[name]["fare_estimate"] = fare_errors(
                None if name == "straight_line" else r, trips, fares)
    out["model_live"]["rides_learned"] = corrector.correction.rides
    return out


def city(path: Path, limit: int | None) -> tuple[dict[str, Any], Any, TripTable]:
    trips = read_trips([path], limit=limit)
    train, test = trips.time_split(0.2)
    started = time.perf_counter()
    model = fit_model(train)
    fit_s = time.perf_counter() - started
    fares = fares_by_line(path)
    doc = {"file": str(path), "rows_read": trips.rows_read, "trips_used": len(trips),
           "rejected": {k: v for k, v in trips.rejected.items() if v},
           "train_trips": len(train), "fit_s": round(fit_s, 2),
           "split": "by pickup time: the earlier 80% train, the later 20% test",
           **evaluate(model, test, fares or None)}
    return doc, model, test


def timing(model: EtaModel, rounds: int) -> dict[str, float]:
    """A batch of 10 pickup ETAs (dispatch's candidates), model against line, same run."""
    rng = np.random.default_rng(1)
    lats = (40.75 + rng.normal(0, 0.01, (rounds, 10))).tolist()
    lngs = (-73.98 + rng.normal(0, 0.01, (rounds, 10))).tolist()
    out = {}
    for name, m in (("model", model), ("straight_line", StraightLineEta())):
        m.pickup_etas(lats[0], lngs[0], 40.758, -73.9855, 1.45e9)
        t = time.perf_counter()
        for a, b in zip(lats, lngs, strict=True):
            m.pickup_etas(a, b, 40.758, -73.9855, 1.45e9)
        out[f"{name}_us_per_batch_of_10"] = round((time.perf_counter() - t) / rounds * 1e6, 1)
    out["model_over_line"] = round(out["model_us_per_batch_of_10"]
                                   / out["straight_line_us_per_batch_of_10"], 1)
    return out


def summary_of(figures: dict[str, Any]) -> dict[str, Any]:
    m, line = figures["model"], figures["straight_line"]
    out: dict[str, Any] = {k: m[k] for k in ("median_abs_pct_error", "p90_abs_pct_error",
                                             "rmsle")}
    out["fare_estimate_median_abs_pct_error"] = m.get("fare_estimate", {}).get(
        "median_abs_pct_error")
    out["straight_line"] = {k: line[k] for k in ("median_abs_pct_error", "p90_abs_pct_error",
                                                 "rmsle")}
    out["straight_line"]["fare_estimate_median_abs_pct_error"] = line.get(
        "fare_estimate", {}).get("median_abs_pct_error")
    live = figures["model_live"]
    out["live_correction"] = {k: live[k] for k in ("median_abs_pct_error", "p90_abs_pct_error",
                                                   "rmsle", "median_predicted_over_actual")}
    out["live_correction"]["fare_estimate_median_abs_pct_error"] = live.get(
        "fare_estimate", {}).get("median_abs_pct_error")
    out["live_correction"]["targets_met"] = {
        k: out["live_correction"][k] is not None and out["live_correction"][k] <= v
        for k, v in TARGETS.items()}
    out["test_trips"] = figures["test_trips"]
    out["targets"] = TARGETS
    out["targets_met"] = {k: out[k] is not None and out[k] <= v for k, v in TARGETS.items()}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--csv", type=Path, help="evaluate the shipped NYC model on this NYC file")
    ap.add_argument("--quick", action="store_true",
                    help=f"the reduced run: the first {QUICK_ROWS} rows of each city")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    machine = describe()  # bench/machine.py: the load, and the machine's speed
    if args.csv:
        model = load(SHIPPED["nyc"])
        trips = read_trips([args.csv])
        figures = {"file": str(args.csv), "rows_read": trips.rows_read,
                   "rejected": {k: v for k, v in trips.rejected.items() if v},
                   "model_file": str(SHIPPED["nyc"].relative_to(ROOT)),
                   **evaluate(model, trips, fares_by_line(args.csv) or None)}
        doc: dict[str, Any] = {"summary": summary_of(figures), "csv": figures,
                               "timing": timing(model, 300)}
    else:
        limit = QUICK_ROWS if args.quick else None
        nyc, nyc_model, _ = city(NYC, limit)
        chicago, _, _ = city(CHICAGO, limit)
        doc = {"summary": summary_of(nyc), "nyc": nyc, "chicago": chicago,
               "timing": timing(nyc_model, 300 if args.quick else 3000)}
    doc["machine"] = {**machine,
                      "note": "a shared 2-core machine: the timing is a ratio in one run"}
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return doc


if __name__ == "__main__":
    main()
