"""The Celery tasks in the embedded mode: retries with backoff on transient errors, the
stuck-payment sweep, and tasks queued with no worker running surviving a restart (the local
transport is on disk)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ridehail.celery_app import EmbeddedWorker, make_celery
from ridehail.settings import Settings
from trips import tasks

from ..conftest import make_settings
from .helpers import captured_once, completed_trip, migrated, payment, set_method, wait_for


def _settled(uowf: Any, trip_id: str) -> Any:
    pay = payment(uowf, trip_id)
    return pay if pay is not None and pay.state != "pending" else None


def test_queued_tasks_survive_a_restart_and_the_sweep_finds_lost_ones(tmp_path: Path) -> None:
    settings: Settings = make_settings(tmp_path)  # embedded: fallback method tok_ok
    engine, uowf = migrated(settings.database_url)
    queued = completed_trip(uowf, fare=1100)
    lost = completed_trip(uowf, fare=900, completed_at=1.0)  # its enqueue never happened
    before = make_celery(settings)
    tasks.enqueue_charge(before, queued.id)  # no worker is running
    assert any((tmp_path / "broker").iterdir())
    before.close()

    after = make_celery(settings)  # "the process restarted"
    worker = EmbeddedWorker(after)
    worker.start()
    try:
        wait_for(lambda: _settled(uowf, queued.id), what="queued charge ran after restart")
        assert payment(uowf, lost.id) is None
        assert tasks.sweep(after, older_than_s=60) == {"payments": 1, "ratings": 0}
        wait_for(lambda: _settled(uowf, lost.id), what="swept charge ran")
    finally:
        worker.stop()
        tasks.dispose(after)
    captured_once(uowf, queued.id, 1100)
    captured_once(uowf, lost.id, 900)
    engine.dispose()


def test_transient_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, payment_retry_base_s=0.02, payment_max_retries=3)
    engine, uowf = migrated(settings.database_url)
    flaky = completed_trip(uowf, fare=600)
    set_method(uowf, flaky.rider_id, "tok_flaky")
    down = completed_trip(uowf, fare=700)
    set_method(uowf, down.rider_id, "tok_timeout")
    app = make_celery(settings)
    worker = EmbeddedWorker(app)
    worker.start()
    try:
        r1 = app.send_task(tasks.CHARGE, args=[flaky.id])
        r2 = app.send_task(tasks.CHARGE, args=[down.id])
        assert r1.get(timeout=60)["state"] == "captured"
        assert r2.get(timeout=60)["state"] == "failed"
    finally:
        worker.stop()
        tasks.dispose(app)
    captured_once(uowf, flaky.id, 600)
    assert payment(uowf, flaky.id).attempts == 2
    gave_up = payment(uowf, down.id)
    assert gave_up.attempts == 4  # the first try and 3 retries
    assert "gave up" in gave_up.last_error
    engine.dispose()


def test_a_slow_payment_does_not_hold_up_another_riders(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sandbox_slow_s=10.0, sandbox_test_hooks=True)
    engine, uowf = migrated(settings.database_url)
    slow = completed_trip(uowf, fare=800)
    set_method(uowf, slow.rider_id, "tok_slow")  # captures, then stalls its task for 10 s
    quick = completed_trip(uowf, fare=500)
    app = make_celery(settings)
    worker = EmbeddedWorker(app, concurrency=settings.embedded_worker_concurrency)
    worker.start()
    try:
        app.send_task(tasks.CHARGE, args=[slow.id])
        app.send_task(tasks.CHARGE, args=[quick.id])
        # The quick charge settles while the slow one's provider call is still stalled (with
        # one task at a time it would wait the whole 10 s behind it).
        wait_for(lambda: _settled(uowf, quick.id), timeout=8, what="the quick charge")
        assert payment(uowf, slow.id) is None or payment(uowf, slow.id).state == "pending"
        wait_for(lambda: _settled(uowf, slow.id), timeout=60, what="the slow charge")
    finally:
        worker.stop()
        tasks.dispose(app)
    captured_once(uowf, quick.id, 500)
    engine.dispose()
