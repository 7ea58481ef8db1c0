"""Faults with a real Redis broker and real `ridehail worker` processes: a charge delivered
twice, a worker SIGKILLed while the provider holds the charge, a Redis restarted while tasks
wait. Each time the trip is charged exactly once and its ledger balances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ridehail.celery_app import make_celery
from trips import tasks

from ..conftest import NEEDS_REDIS, PG_URL, REDIS_URL, ROOT, free_port, make_settings
from .helpers import captured_once, completed_trip, migrated, provider_records, set_method, wait_for

pytestmark = [NEEDS_REDIS, pytest.mark.redis]


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if PG_URL.startswith("postgresql"):
        return str(request.getfixturevalue("pg_schema_url"))
    return f"sqlite:///{tmp_path / 'faults.db'}"


class Workers:
    """`ridehail worker` processes on one unique queue; killed at the end of the test."""

    def __init__(self, tmp: Path, db_url: str, redis_url: str) -> None:
        self.tmp = tmp
        self.queue = f"pay-{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "RIDEHAIL_REDIS_URL": redis_url,
                    "RIDEHAIL_QUEUE": self.queue, "RIDEHAIL_VAR_DIR": str(tmp),
                    "RIDEHAIL_DATABASE_URL": db_url, "RIDEHAIL_LOG_LEVEL": "WARNING",
                    # a dead worker's task comes back after 2 s
                    "RIDEHAIL_TASK_VISIBILITY_TIMEOUT_S": "2",
                    "RIDEHAIL_SANDBOX_SLOW_S": "300", "RIDEHAIL_SANDBOX_TEST_HOOKS": "1",
                    "RIDEHAIL_PAYMENT_RETRY_BASE_S": "0.05"}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.settings = make_settings(tmp, database_url=db_url, redis_url=redis_url,
                                      queue=self.queue, task_visibility_timeout_s=2.0)
        self.app = make_celery(self.settings)

    def start(self, concurrency: int = 1) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "ridehail.cli", "worker", f"--concurrency={concurrency}"],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        self.app.close()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.tmp.glob("worker*.log"))


@pytest.fixture
def workers(tmp_path: Path, db_url: str) -> Iterator[Workers]:
    w = Workers(tmp_path, db_url, REDIS_URL)
    yield w
    w.stop()


def _get(result: Any, w: Workers, timeout: float = 90) -> Any:
    try:
        return result.get(timeout=timeout)
    except Exception:
        print(w.logs())
        raise


def test_a_charge_delivered_twice_charges_once(workers: Workers, db_url: str) -> None:
    engine, uowf = migrated(db_url)
    trip = completed_trip(uowf, fare=2000)
    set_method(uowf, trip.rider_id, "tok_ok")
    first = workers.app.send_task(tasks.CHARGE, args=[trip.id])
    second = workers.app.send_task(tasks.CHARGE, args=[trip.id])
    workers.start(concurrency=2)
    states = [_get(first, workers)["state"], _get(second, workers)["state"]]
    assert states == ["captured", "captured"]
    captured_once(uowf, trip.id, 2000)
    engine.dispose()


def test_a_worker_killed_mid_charge_is_redelivered_and_charges_once(
        workers: Workers, db_url: str) -> None:
    engine, uowf = migrated(db_url)
    trip = completed_trip(uowf, fare=3100)
    set_method(uowf, trip.rider_id, "tok_slow")  # the provider captures, then stalls
    doomed = workers.start()
    result = workers.app.send_task(tasks.CHARGE, args=[trip.id])
    wait_for(lambda: provider_records(uowf, trip.id), timeout=60, what="charge in flight")
    os.kill(doomed.pid, signal.SIGKILL)  # money moved, nothing recorded on our side
    doomed.wait(timeout=30)
    with uowf(readonly=True) as uow:
        assert uow.payments.get(trip.id).state == "pending"
    workers.start()  # the task comes back after the visibility timeout
    assert _get(result, workers)["state"] == "captured"
    captured_once(uowf, trip.id, 3100)
    engine.dispose()


def test_tasks_waiting_in_a_restarted_redis_are_not_lost(tmp_path: Path, db_url: str) -> None:
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
           "--appendfsync", "always", "--dir", str(data), "--save", ""]

    def start_redis() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=port)
        wait_for(lambda: _pings(client), timeout=30, what="redis up")
        return proc

    server = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    w = Workers(tmp_path, db_url, url)
    engine, uowf = migrated(db_url)
    try:
        trip = completed_trip(uowf, fare=1700)
        set_method(uowf, trip.rider_id, "tok_ok")
        result = w.app.send_task(tasks.CHARGE, args=[trip.id])  # no worker yet
        assert redis.Redis(port=port).llen(w.queue) == 1
        redis.Redis(port=port).shutdown(nosave=True)  # the AOF keeps what was acknowledged
        server.wait(timeout=30)
        server = start_redis()
        assert redis.Redis(port=port).llen(w.queue) == 1
        w.start()
        assert _get(result, w)["state"] == "captured"
        captured_once(uowf, trip.id, 1700)
    finally:
        w.stop()
        server.terminate()
        server.wait(timeout=30)
        engine.dispose()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
