"""Celery tasks for payments and ratings. Thin: they call the billing and ratings services.

The wiring says how a process builds their context (`install`): the embedded mode shares the
API's units of work and provider; a `ridehail worker` process builds its own, once, lazily.
Tasks run with acks_late (set app-wide): a task whose worker dies mid-way is delivered again,
which is safe because every task here is idempotent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery

from ridehail.kernel.errors import Conflict
from ridehail.kernel.logging import get_logger

from . import billing, ratings
from .payments import PaymentProvider
from .unit import TripsUnits

log = get_logger(__name__)

CHARGE = "ridehail.charge_trip"
APPLY_RATING = "ridehail.apply_rating"
SWEEP = "ridehail.sweep_payments"


@dataclass
class WorkerContext:
    """What the tasks need, built by the wiring (`ridehail/bootstrap.py:worker_context`): the
    API process's own units of work in the embedded mode, a worker's own in the scaled one."""

    uow_factory: TripsUnits
    provider: PaymentProvider
    policy: billing.BillingPolicy
    stuck_after_s: float
    max_retries: int
    retry_base_s: float
    close: Callable[[], None] = lambda: None


_lock = threading.Lock()


def install(app: Celery, build: Callable[[], WorkerContext]) -> None:
    """Say how this process builds its context; it is built once, on the first task."""
    app.conf.ridehail_context_builder = build
    app._ridehail_ctx = None  # type: ignore[attr-defined]


def context(app: Celery) -> WorkerContext:
    ctx: WorkerContext | None = getattr(app, "_ridehail_ctx", None)
    if ctx is not None:
        return ctx
    with _lock:
        ctx = getattr(app, "_ridehail_ctx", None)
        if ctx is None:
            build = app.conf.ridehail_context_builder
            ctx = build()
            app._ridehail_ctx = ctx  # type: ignore[attr-defined]
    assert ctx is not None
    return ctx


def dispose(app: Celery) -> None:
    ctx: WorkerContext | None = getattr(app, "_ridehail_ctx", None)
    if ctx is not None:
        ctx.close()
        app._ridehail_ctx = None  # type: ignore[attr-defined]


def enqueue_charge(app: Celery, trip_id: str) -> None:
    """After the trip's commit. A lost enqueue (broker down) is caught by the sweep."""
    try:
        app.send_task(CHARGE, args=[trip_id])
    except Exception:  # noqa: BLE001 - the sweep re-enqueues whatever did not get through
        log.warning("could not enqueue the charge; the sweep will", trip_id=trip_id,
                    exc_info=True)


def enqueue_rating(app: Celery, trip_id: str, role: str) -> None:
    try:
        app.send_task(APPLY_RATING, args=[trip_id, role])
    except Exception:  # noqa: BLE001 - the sweep re-enqueues unapplied ratings
        log.warning("could not enqueue the rating; the sweep will", trip_id=trip_id,
                    exc_info=True)


def sweep(app: Celery, older_than_s: float | None = None) -> dict[str, int]:
    """Re-enqueue payments pending for longer than `older_than_s` and ratings not applied by
    then. Duplicates are harmless: the tasks are idempotent."""
    ctx = context(app)
    age = ctx.stuck_after_s if older_than_s is None else older_than_s
    stuck = billing.stuck_payments(ctx.uow_factory, age)
    for trip_id in stuck:
        enqueue_charge(app, trip_id)
    with ctx.uow_factory(readonly=True) as uow:
        unapplied = uow.ratings.unapplied(time.time() - age)
    for trip_id, role in unapplied:
        enqueue_rating(app, trip_id, role)
    if stuck or unapplied:
        log.info("sweep re-enqueued", payments=len(stuck), ratings=len(unapplied))
    return {"payments": len(stuck), "ratings": len(unapplied)}


def register(app: Celery) -> None:
    @app.task(name=CHARGE, shared=False, bind=True)
    def charge_trip(self: Any, trip_id: str) -> dict[str, str]:
        ctx = context(app)
        final = self.request.retries >= ctx.max_retries
        out = billing.charge_trip(ctx.uow_factory, ctx.provider, trip_id, ctx.policy,
                                  final_attempt=final)
        if out.state == "retry":
            # Exponential backoff on transient provider errors, bounded by max retries; the
            # idempotency key is the same on every retry.
            raise self.retry(countdown=ctx.retry_base_s * 2 ** self.request.retries,
                             max_retries=ctx.max_retries)
        log.info("charge", trip_id=trip_id, state=out.state, detail=out.detail)
        return out.to_dict()

    @app.task(name=APPLY_RATING, shared=False, bind=True)
    def apply_rating(self: Any, trip_id: str, role: str) -> dict[str, Any]:
        ctx = context(app)
        try:
            applied = ratings.apply_rating(ctx.uow_factory, trip_id, role)
        except Conflict as exc:
            # Another rating of the same account won the aggregate's CAS: try again shortly.
            raise self.retry(countdown=0.05 * 2 ** self.request.retries, max_retries=10,
                             exc=exc) from None
        if applied is None:
            return {"applied": False}
        rating, agg = applied
        listener = getattr(app.conf, "ridehail_rating_listener", None)
        if listener is not None and rating.rater_role == "rider" and agg.average is not None:
            listener(rating.ratee_id, agg.average)  # the embedded engine's driver_rating
        return {"applied": True, "ratee_id": rating.ratee_id, **agg.to_dict()}

    @app.task(name=SWEEP, shared=False)
    def sweep_payments() -> dict[str, int]:
        return sweep(app)
