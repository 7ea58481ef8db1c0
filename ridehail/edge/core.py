"""The edge's shared state in one process: the Flask app and its engine, the thread pool for
blocking work, the registry of open connections, the location frames' batcher, and the idle
sweeper."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from flask import Flask

from dispatch.engine import Engine
from ridehail.kernel.channel import Channel
from ridehail.kernel.logging import get_logger

from ..settings import Settings
from .connections import REASON_NAMES, Conn, Registry
from .flaskside import Refusal, in_request, overloaded
from .http import refuse
from .location_frames import LocationFrames
from .pool import in_pool

log = get_logger(__name__)

T = TypeVar("T")

RUNNING: set[Edge] = set()  # the edges serving in this process (the server closes them)


class Edge:
    def __init__(self, app: Flask) -> None:
        self.flask = app
        self.settings: Settings = app.extensions["settings"]
        self.engine: Engine = app.extensions["dispatch"]
        self.revocations = app.extensions["revocations"]
        self.pool = ThreadPoolExecutor(max_workers=self.settings.threads,
                                       thread_name_prefix="edge")
        self.registry = Registry(max_per_account=self.settings.conn_max_per_account,
                                 max_connections=self.settings.conn_max_connections,
                                 idle_s=self.settings.conn_idle_s)
        self.locations = LocationFrames(self.engine, self.run)
        # Every revocation (this process's or, relayed, another's): the registry finds the
        # account's connections itself.
        self.revocations.subscribe_all(self.registry.revoked)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None
        app.extensions["edge"] = self
        self._register_metrics(app)

    def _register_metrics(self, app: Flask) -> None:
        metrics = app.extensions.get("metrics")
        if metrics is None:
            return
        from prometheus_client import Counter, Gauge

        # Summed over the live processes: a dead process's connections are gone with it.
        open_now = Gauge("ridehail_edge_connections", "Open connections on the edge",
                         ["kind"], multiprocess_mode="livesum", registry=metrics.registry)
        for kind, n in self.registry.counts.items():
            open_now.labels(kind).set(n)
        self.registry.on_count = lambda kind, n: open_now.labels(kind).set(n)
        closes = Counter("ridehail_edge_closes_total", "Connections the edge closed, by reason",
                         ["reason"], registry=metrics.registry)

        def counted(code: int) -> None:
            closes.labels(REASON_NAMES.get(code, str(code))).inc()

        Conn.counted = counted

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.registry.loop = self.loop
        self._sweeper = self.loop.create_task(self._sweep())
        RUNNING.add(self)

    async def close_connections(self, code: int, timeout_s: float = 5.0) -> None:
        """Close every connection with `code` and wait (a while) until they are gone."""
        self.registry.close_all(code)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.registry.all and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        RUNNING.discard(self)
        if self._sweeper is not None:
            self._sweeper.cancel()
        from ..app import shutdown

        await asyncio.get_running_loop().run_in_executor(None, shutdown, self.flask)
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def _sweep(self) -> None:
        period = min(1.0, self.settings.conn_idle_s / 4)
        while True:
            await asyncio.sleep(period)
            try:
                self.registry.sweep()
            except Exception:  # noqa: BLE001 - the sweeper must keep running
                log.exception("connection sweep failed")

    @contextlib.contextmanager
    def holding(self, conn: Conn, channel: Channel, key: str,
                wake: Callable[[dict[str, Any]], None]) -> Iterator[None]:
        """A connection's lifetime: woken by `channel` for `key` and counted by the registry
        (its limits) while open; both undone, and the connection marked closed, at its end."""
        channel.subscribe(key, wake)
        self.registry.add(conn)
        try:
            yield
        finally:
            conn.closed = True
            channel.unsubscribe(key, wake)
            self.registry.remove(conn)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the edge's thread pool."""
        return await in_pool(self.pool, fn, *args)

    async def admit(self, scope: dict[str, Any], send: Callable[[Any], Any],
                    check: Callable[[], T]) -> T | None:
        """An HTTP channel's opening: `check` (the caller, the query...) in a request context,
        and room in this process. A refusal is answered here, as the REST API words it, and
        gives None."""
        try:
            if self.registry.full():
                raise await self.run(overloaded, self.flask, scope)
            return await self.in_request(scope, check)
        except Refusal as refusal:
            await refuse(send, refusal)
            return None

    async def in_request(self, scope: dict[str, Any], fn: Callable[[], T]) -> T:
        """`fn` in a Flask request context made from `scope`, in the thread pool; a problem
        it raises comes back as a Refusal."""
        return await self.run(in_request, self.flask, scope, fn)
