"""The connection edge: the ASGI app in front of the Flask app (see `asgi.py`)."""

from __future__ import annotations

from typing import Any


def app_from_env() -> Any:
    """uvicorn's factory for each process of the scaled mode: the app from RIDEHAIL_*."""
    from ..app import create_app
    from ..settings import Settings
    from .asgi import EdgeApp

    return EdgeApp(create_app(Settings.from_env(), migrate=False))
