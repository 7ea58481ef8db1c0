"""A trivial task, so the broker and workers can be checked end to end."""

from __future__ import annotations

from celery import Celery


def register(app: Celery) -> None:
    @app.task(name="ridehail.ping", shared=False)
    def ping(value: int = 0) -> dict[str, int]:
        return {"pong": value + 1}
