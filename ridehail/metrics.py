"""Prometheus metrics: request counts and latency histograms per endpoint, plus whatever the
domain packages register on the same registry."""

from __future__ import annotations

import ipaddress
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from .kernel.errors import Problem

# Any other method (a client may send "FOOA") shares one label: a series per made-up method
# would let anyone grow /metrics without limit.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            return Response(generate_latest(self.registry), mimetype=CONTENT_TYPE_LATEST)


def _check_metrics_access(app: Flask) -> None:
    """Open in the embedded mode; in the scaled mode, the configured networks (a Prometheus
    scraper's) or an admin or service token: the figures describe the fleet and its traffic."""
    settings = app.extensions["settings"]
    if settings.metrics_open:
        return
    try:
        addr = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        addr = None
    if addr is not None and any(addr in net for net in settings.metrics_allowed_networks):
        return
    from accounts.auth import principal_from_request
    from accounts.model import Role

    if principal_from_request().role not in (Role.admin, Role.service):
        raise Problem(403, "Forbidden", "/metrics is for the monitoring network, admins and "
                                        "services")
