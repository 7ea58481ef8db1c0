"""Serving the app: uvicorn (asyncio) runs the connection edge (ridehail/edge), which serves
WebSockets, long-polls and event streams on the event loop and hands every other request to
the Flask app in a thread pool. One process in the embedded mode; `RIDEHAIL_WORKERS` processes
sharing one listening socket in the scaled mode.

SIGTERM (or Ctrl-C) stops accepting, closes every WebSocket with 1001 and every event stream
with a `close` event, lets requests in flight finish, then stops the background threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import select
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from flask import Flask

from .kernel.logging import get_logger
from .settings import Settings

log = get_logger(__name__)

GRACEFUL_S = 10
WANT_FDS = 1_048_576


class PortUnavailable(RuntimeError):
    """The address cannot be listened on (taken, not ours, or privileged)."""


def check_port(host: str, port: int) -> None:
    """Bind `host:port` as the server will (IPv6 only for an IPv6 literal, SO_REUSEADDR), then
    let go: a taken port fails here with one message."""
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


def raise_fd_limit(want: int = WANT_FDS) -> tuple[int, int]:
    """Every connection is a file descriptor: raise the soft limit towards the hard one (a
    common default of 1024 would cap the process at about a thousand connections). Returns
    (before, after) and logs a change."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("file-descriptor limit not raised", soft=soft, hard=hard, error=str(exc))
        return soft, soft
    log.info("file-descriptor limit raised", before=soft, after=target)
    return soft, target


# The cyclic collector's thresholds while serving (Python's defaults are 700, 10, 10). With
# thousands of connections held, the heap has millions of tracked objects; at the defaults,
# anything that lives ~10 ms (a frame waiting for its batch, a request in the thread pool) is
# promoted to the oldest generation, whose collections walk the whole heap: measured at 44% of
# the process's GIL time in bench/connections.py (py-spy --native --gil). A young generation
# of 50,000 lets short-lived objects die young; the startup heap is frozen out of every
# collection.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Once the app is built: freeze what exists (modules, the app, the engine's start-up
    state) out of the collector and raise its thresholds (see GC_THRESHOLDS)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    log.info("garbage collector tuned", frozen=gc.get_freeze_count(), thresholds=GC_THRESHOLDS)


class _Redact(logging.Filter):
    """A token in a query string (`?access_token=`: browsers' WebSockets and EventSources)
    never reaches a log line."""

    PATTERN = re.compile(r"(access_token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message:
            record.msg, record.args = self.PATTERN.sub(r"\1[redacted]", message), ()
        return True


def _quiet_uvicorn() -> None:
    """uvicorn logs every WebSocket's opening and closing at INFO, with its URL: thousands
    of lines a minute, each with a token. Warnings and errors only, redacted."""
    logger = logging.getLogger("uvicorn.error")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _Redact) for f in logger.filters):
        logger.addFilter(_Redact())


class Acceptor:
    """Accepts new connections on a thread of its own and hands them to the event loop.

    uvloop accepts one connection per turn of its loop (strace during bench/connections.py:
    one accept4 every ~0.3 s with 10,000 busy WebSockets, never two in a row), so with the
    loop behind, new connections waited in the listen queue (1,000 deep) for tens of
    seconds and were reset. This thread waits on the listening socket (a duplicate of its
    descriptor) outside the GIL and accepts everything queued; the loop adopts each one on
    its next turn. uvloop keeps accepting too: whichever is first takes a connection."""

    POLL_S = 0.25  # how soon a stop is noticed

    def __init__(self, listener: socket.socket, loop: asyncio.AbstractEventLoop,
                 protocol: Callable[[], asyncio.Protocol]) -> None:
        self.sock = socket.socket(fileno=os.dup(listener.fileno()))
        self.sock.setblocking(False)
        self.loop = loop
        self.protocol = protocol
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="acceptor")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2 * self.POLL_S + 1)
        self.sock.close()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(self.POLL_S * 1000):
                continue
            while not self._stop.is_set():
                try:
                    conn, _addr = self.sock.accept()
                except (BlockingIOError, InterruptedError):
                    break  # uvloop took it, or the queue is empty
                except OSError as exc:  # out of descriptors: let the loop's own accept cope
                    log.warning("acceptor: accept failed", error=str(exc))
                    self._stop.wait(self.POLL_S)
                    break
                self.accepted += 1
                try:
                    self.loop.call_soon_threadsafe(self._adopt, conn)
                except RuntimeError:  # the loop is closed: shutting down
                    conn.close()
                    return

    def _adopt(self, conn: socket.socket) -> None:
        """On the loop: the connection becomes a transport with the server's protocol."""
        conn.setblocking(False)
        task = self.loop.create_task(self.loop.connect_accepted_socket(self.protocol, conn))
        task.add_done_callback(_adopted)


def _adopted(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("acceptor: connection not adopted", error=repr(task.exception()))


class EdgeServer(uvicorn.Server):
    """uvicorn, with the edge's own goodbye first: its WebSockets close with 1001 (uvicorn
    alone would send 1012) and its streams end with a `close` event. `on_stop` (the demo's
    fleet) runs before anything closes. New connections are also accepted off the loop
    (`Acceptor`)."""

    on_stop: Callable[[], None] | None = None
    acceptors: list[Acceptor]

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # the app is built and its lifespan started
        tune_gc()
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:  # what uvicorn's own server makes per connection
            return self.config.http_protocol_class(  # type: ignore[call-arg]
                config=self.config, server_state=self.server_state,
                app_state=self.lifespan.state)

        self.acceptors = [Acceptor(sock, loop, protocol) for server in self.servers
                          for sock in (server.sockets or ())]
        for acceptor in self.acceptors:
            acceptor.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        from .edge.connections import GOING_AWAY
        from .edge.core import RUNNING

        if self.on_stop is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.on_stop)
        for acceptor in getattr(self, "acceptors", ()):
            await asyncio.get_running_loop().run_in_executor(None, acceptor.stop)
        for server in self.servers:  # stop accepting first: nobody new joins while we close
            server.close()
        for edge in list(RUNNING):
            await edge.close_connections(GOING_AWAY)
        await super().shutdown(sockets)


def _config(settings: Settings, app: Any, **extra: Any) -> uvicorn.Config:
    """uvicorn's configuration (which sets uvicorn's log levels: quieted after it)."""
    config = uvicorn.Config(
        app, host=settings.host.strip("[]"), port=settings.port, lifespan="on",
        http="httptools", ws="websockets-sansio",
        ws_max_size=settings.conn_max_frame_bytes,
        ws_ping_interval=settings.conn_ping_interval_s,
        ws_ping_timeout=settings.conn_ping_interval_s,
        ws_per_message_deflate=False,  # a compression bomb costs the server, not the client
        proxy_headers=False,  # the peer's address is the client's (rate limits key on it)
        server_header=False, timeout_keep_alive=5, backlog=4096,
        timeout_graceful_shutdown=GRACEFUL_S, log_config=None, access_log=False,
        log_level=settings.log_level.lower(), **extra)
    _quiet_uvicorn()
    return config


def serve(settings: Settings, factory: Callable[[], Flask],
          on_ready: Callable[[], None] | None = None,
          on_stop: Callable[[], None] | None = None) -> None:
    raise_fd_limit()
    if on_ready is not None:
        threading.Thread(target=_when_ready, args=(settings, on_ready), daemon=True,
                         name="on-ready").start()
    if settings.workers == 1:
        from .edge.asgi import EdgeApp

        server = EdgeServer(_config(settings, EdgeApp(factory())))
        server.on_stop = on_stop
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once done
            server.run()
        return
    # Several processes: each builds its own app from the environment (spawned, not forked:
    # the engine's threads do not survive a fork). The command line's overrides travel there.
    os.environ["RIDEHAIL_THREADS"] = str(settings.threads)
    config = _config(settings, "ridehail.edge:app_from_env", factory=True)
    sock = config.bind_socket()
    with metrics_dir() as shared:
        # Before they start: prometheus_client picks its file-backed values when imported.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
        spawn = multiprocessing.get_context("spawn")
        procs = [spawn.Process(target=_run_worker, args=(config, sock),
                               name=f"ridehail-api-{i}") for i in range(settings.workers)]
        for proc in procs:
            proc.start()

        def forward(signum: int, _frame: Any) -> None:  # each process shuts down gracefully
            for proc in procs:
                if proc.pid is not None and proc.is_alive():
                    os.kill(proc.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        _supervise(procs, shared)


def _supervise(procs: list[Any], shared: str) -> None:
    """Wait for the API processes; as each one ends, its live gauges (connections, memory)
    leave the shared metrics at once, while its counters stay in the sums."""
    from prometheus_client.multiprocess import mark_process_dead

    running = {proc.sentinel: proc for proc in procs}
    while running:
        for sentinel in multiprocessing.connection.wait(list(running)):
            proc = running.pop(sentinel)  # type: ignore[call-overload]
            proc.join()
            mark_process_dead(proc.pid, shared)
            if proc.exitcode:
                log.warning("API process exited", name=proc.name, pid=proc.pid,
                            exitcode=proc.exitcode)


@contextlib.contextmanager
def metrics_dir() -> Iterator[str]:
    """The API processes' shared metrics directory: the operator's PROMETHEUS_MULTIPROC_DIR
    emptied of a previous run's files (stale counters would be summed in), or a private one
    of our own (mode 0700: the files are writable memory maps), removed at the end."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        _empty(given)
        try:
            yield given
        finally:
            _empty(given)
        return
    made = tempfile.mkdtemp(prefix="ridehail-metrics-")
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def _empty(folder: str) -> None:
    for name in os.listdir(folder):
        if name.endswith(".db"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))


def _run_worker(config: uvicorn.Config, sock: socket.socket) -> None:
    raise_fd_limit()
    _quiet_uvicorn()
    EdgeServer(config).run(sockets=[sock])


def _when_ready(settings: Settings, on_ready: Callable[[], None]) -> None:
    host = settings.host.strip("[]")
    host = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{settings.port}/health"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own URL
                if resp.status == 200:
                    on_ready()
                    return
        except OSError:
            pass
        time.sleep(0.1)
