from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from ridehail.celery_app import EmbeddedWorker, make_celery

from ..conftest import NEEDS_REDIS, REDIS_URL, ROOT, make_settings


def test_task_runs_through_the_embedded_worker(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    app = make_celery(settings)
    worker = EmbeddedWorker(app)
    worker.start()
    try:
        result = app.send_task("ridehail.ping", args=[41])
        assert result.get(timeout=30) == {"pong": 42}
    finally:
        worker.stop()
    # The local transport is persistent: a message queued while no worker runs is on disk.
    app.send_task("ridehail.ping", args=[1])
    assert any((tmp_path / "broker").iterdir())


@NEEDS_REDIS
def test_task_runs_through_redis_and_a_worker_process(tmp_path: Path) -> None:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RIDEHAIL_REDIS_URL": REDIS_URL, "RIDEHAIL_QUEUE": queue,
           "RIDEHAIL_VAR_DIR": str(tmp_path), "RIDEHAIL_LOG_LEVEL": "WARNING",
           "RIDEHAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
    proc = subprocess.Popen([sys.executable, "-m", "ridehail.cli", "worker", "--concurrency=1"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        settings = make_settings(tmp_path, redis_url=REDIS_URL, queue=queue)
        app = make_celery(settings)
        result = app.send_task("ridehail.ping", args=[99])
        assert result.get(timeout=60) == {"pong": 100}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
