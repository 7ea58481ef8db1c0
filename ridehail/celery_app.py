"""The Celery app. Scaled mode: Redis broker and results, separate `ridehail worker` processes.
Embedded mode: a persistent SQLite transport (queued tasks survive a restart) and a worker
running in a thread of the API process."""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from celery.worker import WorkController

from trips.payments import PaymentProvider

from . import broker  # noqa: F401 - registers the atomic filesystem transport
from .bootstrap import worker_context
from .kernel.logging import get_logger
from .settings import Settings
from .units import UnitFactory

log = get_logger(__name__)



def make_celery(settings: Settings, uow_factory: UnitFactory | None = None,
                provider: PaymentProvider | None = None) -> Celery:
    """The Celery app; its tasks use `uow_factory` and `provider` when given (the embedded
    worker shares the API's), else build their own on the first task."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("ridehail")
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.redis_url or _local_results(settings),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=settings.queue,
        broker_connection_retry_on_startup=True,
        result_expires=3600,
        worker_hijack_root_logger=False,
        broker_transport_options=_transport_options(settings),
    )
    from trips import tasks as trip_tasks

    from . import health_tasks

    health_tasks.register(app)
    trip_tasks.register(app)
    trip_tasks.install(app, worker_context(settings, uow_factory, provider))
    # `ridehail worker --beat` runs this; the embedded mode sweeps on its own timer instead.
    app.conf.beat_schedule = {
        "sweep-payments": {"task": trip_tasks.SWEEP,
                           "schedule": settings.payment_sweep_interval_s},
    }
    app.conf.beat_schedule_filename = str(settings.var_dir / "celerybeat-schedule")
    return app


def _local_results(settings: Settings) -> str:
    folder = settings.var_dir / "results"
    folder.mkdir(parents=True, exist_ok=True)
    return f"file://{folder}"


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.redis_url:
        # acks_late + a visibility timeout: a task whose worker died is delivered again.
        timeout = settings.task_visibility_timeout_s
        # Look for expired unacked messages every half timeout (kombu's default would be
        # 10 s x a throttle of 10), so a dead worker's task comes back about when it is due.
        return {"visibility_timeout": timeout, "unacked_restore_throttle": 1,
                "unacked_restore_interval": min(10.0, max(0.5, timeout / 2))}
    folder = settings.var_dir / "broker"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "control").mkdir(exist_ok=True)
    return {"data_folder_in": str(folder), "data_folder_out": str(folder),
            "control_folder": str(folder / "control"), "polling_interval": 0.05}


class EmbeddedWorker:
    """A Celery worker consuming in a daemon thread of this process (the embedded mode)."""

    def __init__(self, app: Celery, concurrency: int = 1) -> None:
        self.app = app
        self._started = threading.Event()
        self.worker: Any = WorkController(
            app=app,
            concurrency=concurrency,
            pool="solo" if concurrency == 1 else "threads",
            hostname=f"embedded@{threading.get_ident()}",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            ready_callback=lambda *_: self._started.set(),
            loglevel="WARNING",
        )
        self.worker.on_consumer_ready = lambda consumer: self._started.set()
        self._thread = threading.Thread(target=self._run, daemon=True, name="celery-embedded")

    def _run(self) -> None:
        # The solo pool traces tasks against the thread's current app: make it ours. Tasks
        # with a countdown (retries with backoff) run from the timer thread, which sees the
        # default app: make it ours too (the embedded process has one Celery app).
        self.app.set_current()
        self.app.set_default()
        self.worker.start()

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("embedded Celery worker did not start")
        # The worker marks this process as "inside a task"; the API threads are not.
        from celery.result import _set_task_join_will_block

        _set_task_join_will_block(False)
        log.info("embedded celery worker started", broker=self.app.conf.broker_url)

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self.worker.stop(in_sighandler=False)
        except Exception:  # noqa: BLE001 - shutdown is best effort
            log.warning("embedded worker stop failed", exc_info=True)
        self._thread.join(timeout)
