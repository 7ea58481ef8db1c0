"""A city served by several real API processes on loopback, sharing PostgreSQL (a throwaway
schema) and a dedicated Redis server started here (so a test may stop and restart it, and no
other test's streams leak in). Skips, saying why, without RIDEHAIL_DATABASE_URL and
RIDEHAIL_REDIS_URL (the latter only gates: the tests run their own redis-server)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import REDIS_URL, ROOT, TEST_RATE_LIMITS, free_port, wait_http
from tests.nearby_ids import opaque_ids

# Midtown Manhattan: inside the service area.
PICKUP = (40.7549, -73.9840)
DROPOFF = (40.7680, -73.9819)


class RedisServer:
    """A redis-server of our own on a free port, without persistence (a restart empties it,
    the harshest case for the tailers)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@dataclass
class Proc:
    """An API process (or a Celery worker); its output goes to a file, not a pipe that could
    fill up and block it."""

    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@dataclass
class Cluster:
    env: dict[str, str]
    tmp: Path
    redis: RedisServer
    apis: list[Proc] = field(default_factory=list)
    others: list[Proc] = field(default_factory=list)

    def spawn(self, args: list[str], name: str, extra: dict[str, str] | None = None,
              http: bool = True) -> Proc:
        port = free_port()
        log = self.tmp / f"{name}.log"
        env = {**os.environ, **self.env, **(extra or {}), "RIDEHAIL_PORT": str(port)}
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "ridehail.cli", *args], env=env,
                                    cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        p = Proc(proc, log, f"http://127.0.0.1:{port}" if http else "")
        (self.apis if http else self.others).append(p)
        return p

    def start_api(self, name: str, extra: dict[str, str] | None = None) -> Proc:
        p = self.spawn(["serve"], name, extra)
        try:
            wait_http(p.url + "/health", timeout=60, proc=p.proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{p.output()}") from None
        return p

    def start_apis(self, n: int) -> list[Proc]:
        first = self.start_api("api0")  # applies the migrations alone
        rest = [self.spawn(["serve"], f"api{i}") for i in range(1, n)]
        for p in rest:
            try:
                wait_http(p.url + "/health", timeout=60, proc=p.proc)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{p.output()}") from None
        return [first, *rest]

    def start_worker(self) -> Proc:
        return self.spawn(["worker", "--concurrency", "2"], "worker", http=False)

    def stop(self) -> None:
        for p in [*self.apis, *self.others]:
            p.stop()


def cluster_env(db_url: str, redis_url: str, tmp: Path, **extra: str) -> dict[str, str]:
    # Every client of the cluster is this machine's one address: budgets the tests never
    # reach, with the limiter still on (as start_server does).
    limits = {f"RIDEHAIL_{k.upper()}": v for k, v in TEST_RATE_LIMITS.items()}
    return {
        **limits,
        "RIDEHAIL_DATABASE_URL": db_url, "RIDEHAIL_REDIS_URL": redis_url,
        "RIDEHAIL_VAR_DIR": str(tmp), "RIDEHAIL_WORKERS": "1", "RIDEHAIL_THREADS": "16",
        "RIDEHAIL_QUEUE": f"rh-cluster-{uuid.uuid4().hex[:8]}",
        "RIDEHAIL_LOG_LEVEL": "WARNING", "RIDEHAIL_OFFER_TIMEOUT_S": "20",
        **extra,
    }


@pytest.fixture
def stream() -> Iterator[tuple[Any, str]]:
    """The test Redis (RIDEHAIL_REDIS_URL) and a stream name of this test's own, removed after."""
    from dispatch.feed import redis_client

    redis = redis_client(REDIS_URL)
    name = f"test:stream:{uuid.uuid4().hex}"
    yield redis, name
    redis.delete(name)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if not REDIS_URL:
        pytest.skip("needs Redis: RIDEHAIL_REDIS_URL is not set")
    if shutil.which("redis-server") is None:
        pytest.skip("needs the redis-server binary")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_cluster(pg_schema_url: str, redis_server: RedisServer, tmp_path: Path
                 ) -> Iterator[Any]:
    made: list[Cluster] = []

    def make(**extra: str) -> Cluster:
        c = Cluster(cluster_env(pg_schema_url, redis_server.url, tmp_path, **extra), tmp_path,
                    redis_server)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


# --- a small HTTP client ---------------------------------------------------------------------

def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_up_rider(url: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    r = requests.post(f"{url}/v1/riders", json={
        "name": f"Rider {tag}", "email": f"rider-{tag}@example.com",
        "password": "correct horse battery"}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]


def sign_up_driver(url: str, vehicle_class: str = "standard") -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    r = requests.post(f"{url}/v1/drivers", json={
        "name": f"Driver {tag}", "email": f"driver-{tag}@example.com",
        "password": "correct horse battery",
        "vehicle": {"make": "Toyota", "model": "Prius", "plate": tag[:7].upper(), "seats": 4,
                    "vehicle_class": vehicle_class}}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy (bounded: fails naming `what`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def nearby_ids(url: str, token: str, lat: float, lng: float, radius_m: int = 2000) -> set[str]:
    r = requests.get(f"{url}/v1/vehicles/nearby", params={
        "lat": lat, "lng": lng, "radius_m": radius_m, "limit": 50}, headers=auth(token),
        timeout=10)
    assert r.status_code == 200, r.text
    return {f["id"] for f in r.json()["features"]}


def nearby_has(driver_id: str, url: str, token: str, lat: float, lng: float,
               radius_m: int = 2000) -> bool:
    """Whether this rider's nearby shows the driver's vehicle. Its ids are opaque per rider
    (issue 13, item 10): the driver's id is mapped to the ones this rider may see."""
    me = requests.get(f"{url}/v1/me", headers=auth(token), timeout=10)
    assert me.status_code == 200, me.text
    return bool(opaque_ids(me.json()["id"], driver_id)
                & nearby_ids(url, token, lat, lng, radius_m))
