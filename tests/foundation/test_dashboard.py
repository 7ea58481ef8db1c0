"""docs/grafana-dashboard.json (issue 16): every metric its queries name is one the app
exports, and every domain metric has a panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from dispatch import metrics as dispatch_metrics
from tests.conftest import ROOT, app_factory, make_settings
from trips import metrics as trips_metrics

DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
# PromQL's functions, aggregations and keywords that the dashboard uses.
PROMQL = {"rate", "irate", "increase", "sum", "max", "min", "avg", "histogram_quantile",
          "clamp_min", "and", "or", "unless", "on", "ignoring", "offset"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("_count", "_sum")}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    with app_factory(lambda **o: make_settings(tmp_path, **o), start_background=False) as make:
        yield make()


def exported(app: Flask) -> set[str]:
    """The names a scrape of the app shows, a series with no samples yet included."""
    from ridehail.edge.core import Edge

    edge = Edge(app)  # the edge registers its metrics when it is built
    try:
        text = app.test_client().get("/metrics").get_data(as_text=True)
    finally:
        edge.pool.shutdown(wait=False)
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        # A series' name: a gauge's is its family's; the others add their suffixes.
        names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)  # label matchers, ranges
    bare = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", bare)  # grouping labels
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare))
    return words - PROMQL


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_dashboard_names_only_exported_metrics(app: Flask) -> None:
    names = exported(app)
    used = set().union(*(metric_names(q) for q in queries()))
    assert used, "no query found"
    assert sorted(used - names) == []


def test_every_domain_metric_has_a_panel() -> None:
    used = set().union(*(metric_names(q) for q in queries()))
    wanted = {m._name for m in (*dispatch_metrics.ALL, *trips_metrics.ALL)}
    wanted |= {"ridehail_edge_connections", "process_cpu_seconds", "python_gc_collections"}
    missing = {w for w in wanted if not any(u == w or u.startswith(w + "_") for u in used)}
    assert missing == set()


def test_metric_names_are_read_from_promql() -> None:
    q = ('histogram_quantile(0.99, sum by (le, endpoint) '
         '(rate(ridehail_http_request_duration_seconds_bucket{status=~"5.."}[5m])))')
    assert metric_names(q) == {"ridehail_http_request_duration_seconds_bucket"}
