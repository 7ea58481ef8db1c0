"""The `ridehail` command: serve, worker, demo, db upgrade, accounts, eta fit, simulate."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import click

from .settings import Settings, SettingsError, unknown_env_warnings


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        click.echo(f"ridehail: configuration error: {exc}", err=True)
        sys.exit(2)


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """ridehail: a ride-hailing matching backend."""
    for line in unknown_env_warnings():
        click.echo(f"ridehail: warning: {line}", err=True)
    ctx.obj = {"build_sim_engine": _build_sim_engine,
               "var_dir": lambda: load_settings().var_dir}


def _build_sim_engine(**parts: Any) -> Any:
    from .bootstrap import build_sim_engine

    return build_sim_engine(**parts)


@main.command()
@click.option("--host", default=None, help="bind address [RIDEHAIL_HOST]")
@click.option("--port", type=int, default=None, help="port [RIDEHAIL_PORT]")
@click.option("--workers", type=int, default=None, help="API processes [RIDEHAIL_WORKERS]")
@click.option("--threads", type=int, default=None, help="threads per process [RIDEHAIL_THREADS]")
def serve(host: str | None, port: int | None, workers: int | None, threads: int | None) -> None:
    """Serve the API (applies migrations first)."""
    settings = load_settings(host=host, port=port, workers=workers, threads=threads)
    _serve(settings)


def _serve(settings: Settings, on_ready: Any = None, on_stop: Any = None) -> None:
    from .app import create_app
    from .kernel.logging import configure_logging
    from .migrate import upgrade
    from .server import PortUnavailable, check_port
    from .server import serve as run_server

    try:  # before anything is announced or migrated: a taken port is one line, not gunicorn's
        check_port(settings.host, settings.port)  # retries
    except PortUnavailable as exc:
        click.echo(f"ridehail: {exc}", err=True)
        sys.exit(1)
    configure_logging(settings.log_level, settings.log_format)
    upgrade(settings.database_url)
    click.echo(f"ridehail: serving on http://{settings.host}:{settings.port} "
               f"({'scaled' if settings.scaled else 'embedded'} mode)", err=True)
    run_server(settings, lambda: create_app(settings, migrate=False), on_ready=on_ready,
               on_stop=on_stop)


@main.command()
@click.option("--concurrency", type=int, default=2, help="task slots")
@click.option("--beat/--no-beat", default=False, help="also run the periodic scheduler")
@click.option("--metrics-port", type=int, default=None,
              help="serve this worker's Prometheus metrics here [RIDEHAIL_WORKER_METRICS_PORT]")
def worker(concurrency: int, beat: bool, metrics_port: int | None) -> None:
    """Run a Celery worker (the scaled mode)."""
    from .celery_app import make_celery
    from .kernel import ids
    from .kernel.logging import configure_logging
    from .metrics import serve_worker_metrics

    settings = load_settings(worker_metrics_port=metrics_port)
    configure_logging(settings.log_level, settings.log_format)
    if settings.worker_metrics_port:
        serve_worker_metrics(settings)
    ids.configure(settings.worker_id)
    app = make_celery(settings)
    argv = ["worker", f"--loglevel={settings.log_level}", f"--concurrency={concurrency}",
            "--pool=threads", "-Q", settings.queue]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)


@main.command()
@click.option("--port", type=int, default=None, help="port [RIDEHAIL_PORT]")
@click.option("--host", default=None, help="bind address [RIDEHAIL_HOST]")
@click.option("--drivers", type=int, default=None,
              help="simulated drivers (0: none) [RIDEHAIL_DEMO_DRIVERS]")
def demo(port: int | None, host: str | None, drivers: int | None) -> None:
    """API + embedded worker on SQLite + a simulated NYC fleet driving it over HTTP; the URL
    is printed when it is ready. Ctrl-C stops it."""
    settings = load_settings(port=port, host=host, demo_drivers=drivers)
    changes, notes = demo_defaults(settings, os.environ)
    settings = load_settings(port=port, host=host, demo_drivers=drivers, **changes)
    for note in notes:
        click.echo(f"ridehail demo: {note}", err=True)
    url = f"http://{settings.host}:{settings.port}"
    fleet: list[subprocess.Popen[bytes]] = []

    def ready() -> None:
        click.echo(f"\nridehail demo ready at {url}  (health: {url}/health, "
                   f"map: {url}/debug/map, API: {url}/openapi.json). Ctrl-C stops it.\n"
                   f"  rider app:  {url}/app/rider\n"
                   f"  driver app: {url}/app/driver  (take a ride in two windows: README, "
                   "\"The rider and driver apps\")\n", err=True)
        if settings.demo_drivers > 0:
            fleet.append(_start_demo_fleet(settings, url))

    def stop_fleet() -> None:
        for proc in fleet:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    try:  # the fleet stops first: its drivers would only reconnect while the server goes
        _serve(settings, on_ready=ready, on_stop=stop_fleet)
    finally:
        stop_fleet()


def demo_defaults(settings: Settings, env: Mapping[str, str]
                  ) -> tuple[dict[str, Any], list[str]]:
    """The settings the demo changes unless the environment sets them, and a line on each:
    - rate limits off: the fleet signs up its drivers and riders from this machine's one
      address, and the per-IP limits would stop it within a minute;
    - the live travel-time correction off in a time-lapse: the fleet's rides take 1/speed of
      real time, so the correction would learn that the city is `speed` times faster and
      lower every ETA and quote to its bound within a few dozen rides."""
    changes: dict[str, Any] = {}
    notes: list[str] = []
    if "RIDEHAIL_RATE_LIMIT_ENABLED" not in env:
        changes["rate_limit_enabled"] = False
        notes.append("rate limits are off (the fleet signs up from one address; "
                     "RIDEHAIL_RATE_LIMIT_ENABLED=true turns them on)")
    if settings.demo_speed != 1 and settings.demo_drivers > 0 \
            and "RIDEHAIL_ETA_LIVE_HALF_LIFE_S" not in env:
        changes["eta_live_half_life_s"] = 0.0
        notes.append(f"the live travel-time correction is off (the fleet is a "
                     f"{settings.demo_speed:g}x time-lapse, not the city's traffic; "
                     "RIDEHAIL_ETA_LIVE_HALF_LIFE_S turns it on)")
    return changes, notes


# The fleet is a separate process: a client of the API like any driver app.
# It logs (with the server's level and format) its figures every minute and every refusal
# by reason, rate-limited. Half its drivers hold the driver WebSocket (offers pushed, locations
# as frames), half poll, so the demo exercises the connection edge (run_demo_fleet's ws_share).
_FLEET = """
import sys, threading, time, requests
from ridehail.kernel.logging import configure_logging
from simulator.http_mode import run_demo_fleet
url, drivers, rate, token, level, fmt, speed = sys.argv[1:8]
configure_logging(level, fmt)
for _ in range(600):
    try:
        requests.get(url + "/health", timeout=2)
        break
    except requests.RequestException:
        time.sleep(0.1)
try:
    run_demo_fleet(url, drivers=int(drivers), riders_per_hour=float(rate),
                   service_token=token, stop=threading.Event(), speed=float(speed))
except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the demo stops us
    pass
"""
_DEMO_RIDES_PER_HOUR = 300


def _start_demo_fleet(settings: Settings, url: str) -> subprocess.Popen[bytes]:
    from accounts import service as accounts_service

    from .kernel.db import make_engine
    from .units import sql_uow_factory

    engine = make_engine(settings.database_url)
    token = accounts_service.create_service(sql_uow_factory(engine), "demo-fleet")
    engine.dispose()
    speed = settings.demo_speed
    lapse = "" if speed == 1 else f", a time-lapse at {speed:g}x"
    click.echo(f"ridehail demo: {settings.demo_drivers} simulated drivers joining "
               f"(NYC, about {_DEMO_RIDES_PER_HOUR * speed:,.0f} ride requests an hour"
               f"{lapse}; the fleet logs its figures every minute)", err=True)
    return subprocess.Popen([sys.executable, "-c", _FLEET, url, str(settings.demo_drivers),
                             str(_DEMO_RIDES_PER_HOUR), token, settings.log_level,
                             settings.log_format, str(speed)])


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations."""
    from .migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


@main.group()
def accounts() -> None:
    """Service and admin accounts (riders and drivers sign up over the API)."""


def _accounts_uow(settings: Settings) -> tuple[Any, Any]:
    from .kernel import ids
    from .kernel.db import make_engine
    from .migrate import upgrade
    from .units import sql_uow_factory

    ids.configure(settings.worker_id)
    engine = make_engine(settings.database_url)
    upgrade(settings.database_url, engine=engine)
    return engine, sql_uow_factory(engine)


@accounts.command("create-service")
@click.argument("name")
def accounts_create_service(name: str) -> None:
    """Create a service account (fleet gateway, simulator); prints its bearer token."""
    from accounts.service import create_service

    if not 1 <= len(name) <= 100:
        raise click.BadParameter("must be 1 to 100 characters", param_hint="NAME")
    engine, units = _accounts_uow(load_settings())
    try:
        click.echo(create_service(units, name))
    finally:
        engine.dispose()


@accounts.command("create-admin")
@click.argument("email")
def accounts_create_admin(email: str) -> None:
    """Create the admin with EMAIL if needed; prints a new bearer token for it."""
    import re

    from accounts.model import DuplicateEmail
    from accounts.schemas import EMAIL_PATTERN
    from accounts.service import create_admin

    if len(email) > 254 or not re.match(EMAIL_PATTERN, email):
        raise click.BadParameter("not an email address", param_hint="EMAIL")
    engine, units = _accounts_uow(load_settings())
    try:
        click.echo(create_admin(units, email))
    except DuplicateEmail:
        click.echo(f"ridehail: {email} belongs to an account that is not an admin", err=True)
        sys.exit(1)
    finally:
        engine.dispose()


@main.group()
def eta() -> None:
    """Travel-time models learned from recorded trips."""


@eta.command("fit")
@click.option("--demand", "demand", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="trip CSV (NYC yellow/green, Uber 2014, Chicago; detected from the header); "
                   "repeat for several files of one city")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="the model file to write (.npz)")
@click.option("--city", type=click.Path(exists=True, dir_okay=False), default=None,
              help="service area GeoJSON: trips outside it are refused "
                   "[default: the format's city, NYC boroughs or Chicago]")
@click.option("--holidays", "country", default="US", show_default=True,
              help="whose public holidays count as Sundays: a country code, optionally with "
                   "a subdivision (US-NY), as the holidays package names them; or none")
def eta_fit(demand: tuple[str, ...], out: str, city: str | None, country: str) -> None:
    """Fit a travel-time model on recorded trips; prints what was used and refused (JSON)."""
    import json

    from simulator.city import CityError, load_city
    from simulator.demand import DemandError
    from simulator.eta_fit import FitError, fit_and_save

    try:
        area = load_city(city) if city else None
    except CityError as exc:
        raise click.BadParameter(str(exc), param_hint="--city") from None
    try:
        done = fit_and_save(demand, out, area, country)
    except DemandError as exc:
        raise click.BadParameter(str(exc), param_hint="--demand") from None
    except FitError as exc:
        click.echo(f"ridehail eta fit: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        raise click.BadParameter(f"cannot write the model: {exc.strerror or exc}",
                                 param_hint="--out") from None
    click.echo(json.dumps(done, indent=2))


from simulator.cli import simulate  # noqa: E402 - the simulator's command joins the group

main.add_command(simulate)

if __name__ == "__main__":
    main()
