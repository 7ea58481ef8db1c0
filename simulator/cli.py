"""`ridehail simulate`: run the city simulator against the engine (in process) or a server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

# Kept literal (and the heavy imports lazy) so `ridehail --help` does not load numpy/shapely.
POLICIES = ("greedy", "batched")
REPOSITION_CHOICES = ("stay", "random", "demand", "rebalance")

_NUM = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"^\s*(?:{_NUM}h)?\s*(?:{_NUM}m)?\s*(?:{_NUM}s?)?\s*$")


def parse_duration(text: str) -> float:
    """'1h', '30m', '90s', '90', '1h30m' -> seconds."""
    m = _DURATION.match(text or "")
    if not m or not any(m.groups()):
        raise ValueError(f"expected a duration like 90s, 30m, 2h or 1h30m, got {text!r}")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    total = h * 3600 + mi * 60 + s
    if total <= 0:
        raise ValueError(f"must be > 0, got {text!r}")
    return total


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _non_negative(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and value < 0:
        raise click.BadParameter(f"must be >= 0, got {value}")
    return value


@click.command("simulate")
@click.option("--city", type=click.Path(exists=True, dir_okay=False), default=None,
              help="service area GeoJSON [default: the NYC boroughs]")
@click.option("--roads", type=click.Path(exists=True, dir_okay=False), default=None,
              envvar="RIDEHAIL_ROADS",
              help="OpenStreetMap extract (.osm, .osm.bz2, .osm.pbf): cars drive its routes and "
                   "dispatch ranks by them; without --city the area is the roads' hull "
                   "[RIDEHAIL_ROADS]")
@click.option("--demand", type=click.Path(exists=True, dir_okay=False), default=None,
              help="trip CSV to replay (NYC yellow/green, Uber 2014, Chicago); "
                   "default: synthetic hotspots")
@click.option("--demand-rate", type=float, default=None, callback=_non_negative,
              help="requests per hour [default: as recorded]")
@click.option("--drivers", type=int, default=1000, show_default=True, callback=_non_negative)
@click.option("--duration", default="1h", show_default=True, callback=_duration,
              help="simulated time: 90s, 30m, 2h")
@click.option("--policy", type=click.Choice(POLICIES), default="greedy", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mode", type=click.Choice(("engine", "http")), default="engine",
              show_default=True, help="in-process engine, or a running server's API")
@click.option("--url", default=None, help="server URL for --mode http")
@click.option("--speed", type=float, default=60.0, show_default=True,
              help="--mode http: simulated seconds per wall second")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="folder for report.json and report.html "
                   "[default: var/simulation, under RIDEHAIL_VAR_DIR]")
@click.option("--accept-prob", type=click.FloatRange(0.0, 1.0), default=0.9,
              show_default=True, help="probability a driver accepts an offer")
@click.option("--reposition", type=click.Choice(REPOSITION_CHOICES), default="stay",
              show_default=True, help="what idle drivers do")
@click.option("--eta-model", default=None,
              help="travel times of dispatch and the fleet: a model file from `ridehail eta "
                   "fit`, or straight-line [default: the city's shipped model (NYC), else the "
                   "straight line]")
@click.option("--batch-window", type=float, default=None, callback=_non_negative,
              help="--policy batched: seconds per assignment window [default: 2]")
@click.option("--batch-hold", type=float, default=None, callback=_non_negative,
              help="--policy batched: an unmatched trip waits for later windows up to this "
                   "many seconds after its request [default: 0]")
@click.option("--batch-eta-cap", type=float, default=None, callback=_non_negative,
              help="--policy batched: longest pickup ETA (s) offered to a new request, "
                   "0 for none [default: 0]")
@click.option("--batch-eta-cap-growth", type=float, default=None, callback=_non_negative,
              help="--policy batched: seconds the cap grows per second waited [default: 1]")
@click.option("--batch-forward", type=float, default=None, callback=_non_negative,
              help="--policy batched: drivers this many seconds from their dropoff are "
                   "candidates too [default: 0]")
@click.option("--progress/--no-progress", default=True, help="progress bar on stderr")
def simulate(city: str | None, roads: str | None, demand: str | None,
             demand_rate: float | None, drivers: int, duration: float, policy: str,
             seed: int, mode: str, url: str | None,
             speed: float, out: str | None, accept_prob: float, reposition: str,
             eta_model: str | None, batch_window: float | None,
             batch_hold: float | None, batch_eta_cap: float | None,
             batch_eta_cap_growth: float | None, batch_forward: float | None,
             progress: bool) -> None:
    """Simulate a city's riders and drivers against the real dispatch engine."""
    # The wiring (`ridehail simulate`) hands over how to build the engine and where var/ is.
    obj = click.get_current_context().obj or {}
    build_engine = obj.get("build_sim_engine")
    if mode == "engine" and build_engine is None:
        raise click.UsageError("run the engine mode as `ridehail simulate`")
    from .report import write_report
    from .scenario import SimConfig

    if mode == "http" and not url:
        raise click.BadParameter("required with --mode http", param_hint="--url")
    if speed <= 0:
        raise click.BadParameter("must be > 0", param_hint="--speed")
    # Engine mode only: in HTTP mode the server dispatches with its own RIDEHAIL_* settings.
    batch = {"batch_window_s": batch_window, "batch_hold_s": batch_hold,
             "batch_eta_cap_s": batch_eta_cap, "batch_eta_cap_growth": batch_eta_cap_growth,
             "batch_forward_s": batch_forward}
    cfg = SimConfig(city=city, roads=roads, demand=demand, demand_rate=demand_rate,
                    drivers=drivers, duration_s=duration, policy=policy, seed=seed,
                    accept_prob=accept_prob,
                    reposition=reposition, eta_model=eta_model,
                    dispatch={k: v for k, v in batch.items() if v is not None})
    sc = _prepare(cfg)
    if mode == "engine":
        from dispatch.learned_eta import ModelFileError

        from .engine_mode import run_engine

        assert build_engine is not None
        try:
            result, _sim = run_engine(sc, build_engine, progress=progress)
        except ModelFileError as exc:
            raise click.BadParameter(str(exc), param_hint="--eta-model") from None
    else:
        from .http_mode import run_http

        result = run_http(sc, url or "", speed=speed, progress=progress)
    json_path, html_path = write_report(result, _out_dir(out, obj.get("var_dir")))
    click.echo(json.dumps({"report": str(json_path), "html": str(html_path),
                           "kpis": result.kpis}, indent=2))


def _out_dir(out: str | None, var_dir: Any) -> Path:
    """--out, else var/simulation: var/ is the project's git-ignored scratch folder."""
    if out:
        return Path(out)
    return Path(var_dir() if callable(var_dir) else "var") / "simulation"


def _prepare(cfg: Any) -> Any:
    from roads import RoadError

    from .city import CityError
    from .demand import DemandError
    from .scenario import prepare

    try:
        return prepare(cfg)
    except CityError as exc:
        raise click.BadParameter(str(exc), param_hint="--city") from None
    except RoadError as exc:
        raise click.BadParameter(str(exc), param_hint="--roads") from None
    except DemandError as exc:
        raise click.BadParameter(str(exc), param_hint="--demand") from None

