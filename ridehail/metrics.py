"""Prometheus metrics: request counts and latency histograms per endpoint, the domain
packages' metrics (`dispatch/metrics.py`, `trips/metrics.py`), the edge's, and the process and
GC collectors.

With several API processes (`ridehail serve --workers N`) the supervisor gives them a private
`PROMETHEUS_MULTIPROC_DIR` (`ridehail/server.py`): prometheus_client then keeps every value in
files there, and whichever process answers `/metrics` reads them all: counters and histograms
summed over every process (a dead one's included), gauges by their `multiprocess_mode`. The
process and GC collectors read only the process they run in, so in that mode each process
copies its own figures into the files (`ProcessMirror`)."""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from typing import Any
from wsgiref.simple_server import make_server

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from dispatch import metrics as dispatch_metrics
from trips import metrics as trips_metrics

from .kernel.errors import Problem
from .settings import Settings

# Any other method (a client may send "FOOA") shares one label: a series per made-up method
# would let anyone grow /metrics without limit.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


MIRROR_PERIOD_S = 5.0
SYSTEM_COLLECTORS: tuple[Collector, ...] = (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR)


def multiprocess_dir() -> str | None:
    """The shared metrics directory when several processes serve (prometheus_client reads the
    same variable when it is imported: the supervisor sets it before starting them)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        self.registry = CollectorRegistry()
        for collector in (*dispatch_metrics.ALL, *trips_metrics.ALL):
            self.registry.register(collector)
        self.mirror: ProcessMirror | None = None
        if self.multiprocess:
            self.mirror = ProcessMirror()
        else:
            for system in SYSTEM_COLLECTORS:
                self.registry.register(system)
        self.requests = Counter(
            "ridehail_http_requests_total", "HTTP requests", ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ridehail_http_request_duration_seconds", "HTTP request latency",
            ["method", "endpoint"], buckets=BUCKETS, registry=self.registry,
        )

    def init_app(self, app: Flask) -> None:
        app.extensions["metrics"] = self

        @app.before_request
        def _start() -> None:
            g._metrics_t0 = time.perf_counter()

        @app.after_request
        def _record(resp: Response) -> Response:
            t0 = g.pop("_metrics_t0", None)
            endpoint = request.url_rule.rule if request.url_rule else "unmatched"
            method = request.method if request.method in METHODS else "other"
            self.requests.labels(method, endpoint, str(resp.status_code)).inc()
            if t0 is not None:
                self.latency.labels(method, endpoint).observe(time.perf_counter() - t0)
            return resp

        @app.get("/metrics")
        def metrics() -> Response:
            _check_metrics_access(app)
            return Response(self.exposition(), mimetype=CONTENT_TYPE_LATEST)

    def exposition(self) -> bytes:
        """The Prometheus text: this process's registry, or every process's files."""
        if self.mirror is None:
            return generate_latest(self.registry)
        self.mirror.sample()  # the answering process's own figures are fresh
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        return generate_latest(merged)


class ProcessMirror:
    """Multiprocess mode: this process's process, GC and platform figures, copied into the
    shared files every few seconds (and before this process answers `/metrics`). Gauges are
    kept per live process (`pid` label, gone when the supervisor marks the process dead);
    counters (CPU seconds, GC collections) are summed over every process that ever served,
    as Prometheus counters must never go back."""

    def __init__(self, period_s: float = MIRROR_PERIOD_S) -> None:
        self.period_s = period_s
        self._gauges: dict[str, Gauge] = {}
        self._counters: dict[str, Counter] = {}
        self._seen: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        with self._lock:
            for collector in SYSTEM_COLLECTORS:
                for family in collector.collect():
                    for sample in family.samples:
                        self._copy(family.type, family.name, family.documentation, sample)

    def _copy(self, kind: str, family: str, doc: str, sample: Any) -> None:
        names = tuple(sorted(sample.labels))
        if kind == "counter":
            if not sample.name.endswith("_total"):
                return  # `_created`: not kept in multiprocess mode
            counter = self._counters.get(family)
            if counter is None:
                counter = self._counters[family] = Counter(family, doc, names, registry=None)
            key = (family, tuple(sorted(sample.labels.items())))
            delta = sample.value - self._seen.get(key, 0.0)
            if delta > 0:
                (counter.labels(**sample.labels) if names else counter).inc(delta)
                self._seen[key] = sample.value
            return
        gauge = self._gauges.get(sample.name)
        if gauge is None:
            gauge = self._gauges[sample.name] = Gauge(
                sample.name, doc, names, multiprocess_mode="liveall", registry=None)
        (gauge.labels(**sample.labels) if names else gauge).set(sample.value)

    def start(self) -> ProcessMirror:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True, name="metrics-mirror")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def serve_worker_metrics(settings: Settings) -> Any:
    """`ridehail worker`'s metrics (payment attempts and failures happen there in the scaled
    mode; its process and GC), on `RIDEHAIL_WORKER_METRICS_PORT` of `RIDEHAIL_HOST`, in a
    thread. The same rule as `/metrics`, less the tokens: the monitoring networks only."""
    registry = CollectorRegistry()
    for collector in (*trips_metrics.ALL, *SYSTEM_COLLECTORS):
        registry.register(collector)
    exporter = make_wsgi_app(registry)

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if settings.metrics_open or from_monitoring(settings, environ.get("REMOTE_ADDR")):
            return exporter(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"the worker's metrics are for the monitoring networks\n"]

    httpd = make_server(settings.host.strip("[]"), settings.worker_metrics_port, guarded,
                        ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True, name="worker-metrics").start()
    return httpd


def from_monitoring(settings: Settings, remote_addr: str | None) -> bool:
    """Whether a peer is on one of the monitoring networks (`RIDEHAIL_METRICS_NETWORKS`)."""
    try:
        addr = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return any(addr in net for net in settings.metrics_allowed_networks)


def _check_metrics_access(app: Flask) -> None:
    """Open in the embedded mode; in the scaled mode, the configured networks (a Prometheus
    scraper's) or an admin or service token: the figures describe the fleet and its traffic."""
    settings = app.extensions["settings"]
    if settings.metrics_open or from_monitoring(settings, request.remote_addr):
        return
    from accounts.auth import principal_from_request
    from accounts.model import Role

    if principal_from_request().role not in (Role.admin, Role.service):
        raise Problem(403, "Forbidden", "/metrics is for the monitoring network, admins and "
                                        "services")
