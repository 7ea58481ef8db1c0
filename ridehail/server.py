"""Serving the app with gunicorn (threaded workers: long-polls and WebSockets hold a thread)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from .settings import Settings


class PortUnavailable(RuntimeError):
    """The address cannot be listened on (taken, not ours, or privileged)."""


def check_port(host: str, port: int) -> None:
    """Bind `host:port` as gunicorn will (IPv6 only for an IPv6 literal, SO_REUSEADDR), then let
    go: a taken port fails here with one message instead of gunicorn's five seconds of retries."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            why = ("address already in use (another process listens there; choose another "
                   "port with --port or RIDEHAIL_PORT)" if exc.errno == errno.EADDRINUSE
                   else exc.strerror or str(exc))
            raise PortUnavailable(f"cannot listen on {host}:{port}: {why}") from None


class GunicornServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # options newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.factory()


def serve(settings: Settings, factory: Callable[[], Flask],
          on_ready: Callable[[], None] | None = None) -> None:
    def worker_exit(_server: Any, worker: Any) -> None:
        from .app import shutdown

        app = getattr(worker, "wsgi", None)
        if isinstance(app, Flask):
            shutdown(app)

    def when_ready(_server: Any) -> None:
        if on_ready:
            on_ready()

    options = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        "timeout": 120,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,
        "loglevel": settings.log_level.lower(),
        "worker_exit": worker_exit,
        "when_ready": when_ready,
        "preload_app": False,
        "control_socket_disable": True,
    }
    GunicornServer(factory, options).run()
