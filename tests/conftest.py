"""Shared fixtures. Tests that need PostgreSQL or Redis read RIDEHAIL_DATABASE_URL /
RIDEHAIL_REDIS_URL and skip, saying so, when the variable is not set."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import text

from ridehail.settings import RATE_LIMITS, Settings
from ridehail.warmup import drop_stale_kernels

drop_stale_kernels()  # a checkout's cached kernels may predate a change to a callee's file

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("RIDEHAIL_DATABASE_URL", "")
REDIS_URL = os.environ.get("RIDEHAIL_REDIS_URL", "")
NEEDS_PG = pytest.mark.skipif(
    not PG_URL.startswith("postgresql"),
    reason="needs PostgreSQL: RIDEHAIL_DATABASE_URL is not set to a postgresql:// URL",
)
NEEDS_REDIS = pytest.mark.skipif(
    not REDIS_URL, reason="needs Redis: RIDEHAIL_REDIS_URL is not set"
)


# Tests sign up, log in and request trips far faster than anyone, all from 127.0.0.1: the
# limiter stays on (its code runs in every test), with budgets no test reaches. The rate-limit
# tests pass their own limits; the production defaults are the Settings' own.
TEST_RATE_LIMITS = {name: "100000/minute" for name in RATE_LIMITS}


def make_settings(tmp: Path, **overrides: object) -> Settings:
    """Settings isolated in a temporary folder; the environment is not read."""
    base: dict[str, object] = {
        "database_url": f"sqlite:///{tmp / 'ridehail.db'}",
        "var_dir": tmp,
        "log_level": "WARNING",
        **TEST_RATE_LIMITS,
    }
    base.update(overrides)
    return Settings.from_env(env={}, **base)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def throwaway_pg_schema(prefix: str = "rh_test") -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not PG_URL.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: RIDEHAIL_DATABASE_URL is not set to a postgresql:// URL")
    from ridehail.kernel.db import make_engine

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_schema_url() -> Iterator[str]:
    yield from throwaway_pg_schema()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Runs a test on SQLite and, when RIDEHAIL_DATABASE_URL is set, on PostgreSQL."""
    if request.param == "sqlite":
        return make_settings(tmp_path)
    url = request.getfixturevalue("pg_schema_url")
    return make_settings(tmp_path, database_url=url)


BACKENDS = ("memory", "sqlite", "postgresql")


@contextlib.contextmanager
def units_on(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """The unit-of-work factory the app uses, over memory, SQLite (a fresh file) or PostgreSQL
    (the `pg_schema_url` fixture: it skips, saying so, without RIDEHAIL_DATABASE_URL). The SQL
    schema is the migrations' own."""
    from ridehail.kernel.db import make_engine
    from ridehail.migrate import upgrade
    from ridehail.units import memory_uow_factory, sql_uow_factory

    if backend == "memory":
        yield memory_uow_factory()
        return
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'units.db'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    engine = make_engine(url)
    upgrade(url, engine=engine)
    try:
        yield sql_uow_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def pg_units(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """`units_on` PostgreSQL alone: the race tests that need two open units at once."""
    with units_on("postgresql", request, tmp_path) as units:
        yield units


@pytest.fixture(params=BACKENDS)
def uow_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """The same unit-of-work factory the API uses, over memory, SQLite and PostgreSQL: the
    repository contract suites run each test on all three."""
    with units_on(request.param, request, tmp_path) as units:
        yield units


@contextlib.contextmanager
def app_factory(settings_for: Callable[..., Settings], *,
                start_background: bool) -> Iterator[Callable[..., Flask]]:
    """`make(**overrides)` builds an app on `settings_for(**overrides)`; every app made is shut
    down when the block ends (several calls give several instances, e.g. on one database)."""
    from ridehail.app import create_app, shutdown

    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        app = create_app(settings_for(**overrides), start_background=start_background)
        apps.append(app)
        return app

    try:
        yield make
    finally:
        for app in apps:
            shutdown(app)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until `url` answers 200 (the server's readiness event), or fail with its output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}:\n{out}")
        try:
            # A listening socket is not a ready app (a server may accept before its app is
            # built): only an HTTP answer counts.
            if requests.get(url, timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout} s")


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode(errors="replace") if out else ""


def start_server(env: dict[str, str], args: list[str] | None = None) -> Server:
    port = free_port()
    limits = {f"RIDEHAIL_{k.upper()}": v for k, v in TEST_RATE_LIMITS.items()}
    full_env = {**limits, **os.environ, **env, "RIDEHAIL_PORT": str(port),
                "RIDEHAIL_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ridehail.cli", *(args or ["serve"])],
        env=full_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    server = Server(proc, f"http://127.0.0.1:{port}")
    try:
        wait_http(server.url + "/health", proc=proc)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{server.stop()}") from None
    return server


# --- browser tests ------------------------------------------------------------------------------

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def chromium_path(what: str) -> str:
    """Debian's chromium for a browser test (Playwright cannot download its own here). Without
    it the test fails, saying so: only PostgreSQL and Redis tests may skip (.ci/run installs
    chromium)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(f"{what}: needs chromium on PATH (Debian: apt-get install chromium; .ci/run "
                    "installs it); it does not skip: only PostgreSQL and Redis tests may",
                    pytrace=False)
    return path

