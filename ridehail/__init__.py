"""ridehail: composition root. App factory, settings, CLI, database, Celery app, ids, errors."""

__version__ = "0.1.0"
