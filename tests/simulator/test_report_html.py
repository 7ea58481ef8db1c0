"""simulator.report: report.json and a self-contained, deterministic report.html."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import h3
import pytest

from simulator.report import KPI_SPECS, SimulationResult, render_html, report_json, write_report

CENTRE = (40.7580, -73.9855)
OUTLINE = [[(40.70, -74.02), (40.70, -73.93), (40.80, -73.93), (40.80, -74.02), (40.70, -74.02)]]


def _result(**overrides: object) -> SimulationResult:
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(*CENTRE, 8), 2))
    result = SimulationResult(
        kpis={
            "served_pct": 91.25,
            "no_driver_pct": 6.1,
            "rider_cancel_pct": 2.65,
            "offer_acceptance_pct": 83.0,
            "driver_utilisation_pct": 61.4,
            "empty_km_pct": 33.3,
            "trips_per_hour": 2712,
            "revenue": 40123.5,
            "requests": 3000,
        },
        waits_s=[float(w) for w in range(1, 301)],
        timeseries=[
            {"t_s": t, "utilisation_pct": 50 + t / 120, "served_pct": 95 - t / 720}
            for t in range(0, 3601, 300)
        ],
        cell_demand={c: i for i, c in enumerate(cells)},
        cell_supply={c: float(len(cells) - i) / 2 for i, c in enumerate(cells) if i % 5},
        city_outline=OUTLINE,
        title="NYC <test> run",
        params={"seed": 1, "drivers": 500, "demand": "yellow.csv"},
        demand_rejected={"zero_coords": 98, "outside_city": 27},
    )
    for k, v in overrides.items():
        setattr(result, k, v)
    return result


def test_writes_both_files_and_html_is_self_contained(tmp_path: Path) -> None:
    json_path, html_path = write_report(_result(), tmp_path / "out")
    assert json_path.name == "report.json" and html_path.name == "report.html"
    text = html_path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    lowered = text.lower()
    for forbidden in ("http://", "https://", "<script", "src=", "@import", "url("):
        assert forbidden not in lowered, forbidden
    assert text.count("<svg") == 3
    assert "<style>" in text


def test_html_shows_every_kpi() -> None:
    text = render_html(_result())
    for _, label, _ in KPI_SPECS:
        assert label in text
    for shown in (
        "91.2 %",
        "6.1 %",
        "2.6 %",
        "83.0 %",
        "61.4 %",
        "33.3 %",
        "2,712",
        "USD 40,123.50",
    ):
        assert shown in text, shown
    assert "requests" in text and "3,000" in text  # an extra KPI
    assert "zero_coords" in text  # the rejected rows
    # Wait percentiles are computed from waits_s when the KPI dict lacks them (1..300 s).
    assert "150 s" in text and "270 s" in text and "297 s" in text


def test_map_draws_every_cell_and_the_outline() -> None:
    result = _result()
    text = render_html(result)
    cells = set(result.cell_demand) | set(result.cell_supply)
    assert sum(c in text for c in cells) == len(cells)
    assert len(re.findall(r"<polygon ", text)) == len(cells) + len(OUTLINE)
    assert "no supply" in text  # cells with demand and no drivers


def test_output_is_deterministic(tmp_path: Path) -> None:
    a = write_report(_result(), tmp_path / "a")
    b = write_report(_result(), tmp_path / "b")
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()


def test_json_document(tmp_path: Path) -> None:
    result = _result(kpis={"served_pct": math.nan, "revenue": 10.0})
    json_path, _ = write_report(result, tmp_path)
    doc = json.loads(json_path.read_text())
    assert doc["schema"] == "ridehail.simulation_report/1"
    assert doc["kpis"]["served_pct"] is None  # NaN becomes null, never invalid JSON
    assert doc["kpis"]["pickup_wait_p50_s"] == pytest.approx(150.5)
    hist = doc["pickup_waits"]["histogram"]
    assert sum(hist["counts"]) == 300 and len(hist["bin_edges_s"]) == len(hist["counts"]) + 1
    assert doc["pickup_waits"]["count"] == 300
    assert len(doc["timeseries"]) == 13
    ratios = {c["cell"]: c["ratio"] for c in doc["cells"]}
    assert any(r is None for r in ratios.values())
    assert doc == report_json(result)


def test_text_is_escaped() -> None:
    text = render_html(_result(params={"note": "<script>alert(1)</script>"}))
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "NYC &lt;test&gt; run" in text


def test_empty_result_still_renders() -> None:
    text = render_html(SimulationResult(kpis={}))
    assert text.count("n/a") == len(KPI_SPECS)
    assert "no served requests" in text and "no time series" in text


def test_invalid_cell_is_rejected() -> None:
    with pytest.raises(ValueError, match="not an H3 cell"):
        report_json(_result(cell_demand={"nope": 3}))
