"""simulator.report: report.json and a self-contained, deterministic report.html."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import h3
import pytest

from ridehail.bootstrap import build_sim_engine
from simulator.engine_mode import EngineSimulation
from simulator.report import KPI_SPECS, SimulationResult, render_html, report_json, write_report
from simulator.report_text import PARAM_HELP
from simulator.scenario import SimConfig, prepare

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
            "driver_utilisation_pct": 55.2,
            "driver_utilisation_after_warmup_pct": 61.4,
            "warmup_s": 600.0,
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
        params={"seed": 1, "drivers": 500, "demand": "yellow.csv", "simulated_s": 5400.0,
                "duration_s": 3600.0, "city_name": "nyc", "policy": "greedy"},
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
    for figure in KPI_SPECS:
        assert figure.label in text
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
    assert "Ride requests" in text and "3,000" in text
    assert "<th>extra_kpi</th><td class='v'>7</td>" in render_html(
        _result(kpis={"extra_kpi": 7}))  # a key without a spec is still shown
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
    assert text.count("<td class='v'>n/a</td>") == len(KPI_SPECS)
    assert "no served requests" in text and "no time series" in text


def test_invalid_cell_is_rejected() -> None:
    with pytest.raises(ValueError, match="not an H3 cell"):
        report_json(_result(cell_demand={"nope": 3}))


def _pos(text: str, needle: str) -> int:
    assert needle in text, needle
    return text.index(needle)


def test_headline_first_and_configuration_last() -> None:
    text = render_html(_result())
    headline = _pos(text, "<h2>Headline figures</h2>")
    more = _pos(text, "<h2>More figures</h2>")
    charts = _pos(text, "<h2>Pickup wait</h2>")
    config = _pos(text, "<h2>Configuration</h2>")
    assert headline < more < charts < config
    assert "<h2>" not in text[config + 4:]  # nothing after the configuration
    for figure in KPI_SPECS:
        at = _pos(text, f"<th>{figure.label}</th>")
        assert (headline < at < more) if figure.headline else (more < at < charts), figure.key
    assert config < _pos(text, "<th>seed</th>")
    # The headline says what was simulated, in words.
    assert "3,000 ride requests over 1 h of simulated demand in nyc, 500 drivers" in text
    # Utilisation on top is the one without the warm-up; the whole-run figure is labelled so.
    assert headline < _pos(text, "Driver utilisation (after warm-up)</th><td class='v'>61.4 %")
    assert more < _pos(text, "Driver utilisation (whole run, with warm-up)</th>"
                             "<td class='v'>55.2 %")
    assert "600 s (10 min)" in text  # the warm-up's length


def test_every_figure_and_setting_is_explained() -> None:
    text = render_html(_result())
    for figure in KPI_SPECS:
        assert figure.help
        row = re.search(rf"<th>{re.escape(figure.label)}</th><td class='v'>[^<]*</td>"
                        r"<td class='help'>([^<]*)</td>", text)
        assert row and row.group(1) == html.escape(figure.help), figure.key
    sim = re.search(r"<th>simulated_s</th><td class='v'>5400.0</td><td class='help'>([^<]*)<",
                    text)
    assert sim and "drain" in sim.group(1) and "not wall-clock" in sim.group(1)
    doc = report_json(_result())
    assert doc["descriptions"]["params"]["simulated_s"] == PARAM_HELP["simulated_s"]
    assert set(doc["descriptions"]["kpis"]) == {f.key for f in KPI_SPECS}


def test_a_real_run_has_no_unexplained_figure_or_setting() -> None:
    cfg = SimConfig(drivers=10, duration_s=900, demand_rate=120, seed=2)
    result = EngineSimulation(prepare(cfg), build_sim_engine).run()
    assert set(result.kpis) <= {f.key for f in KPI_SPECS}
    assert set(result.params) <= set(PARAM_HELP)
    assert result.kpis["warmup_s"] and result.kpis["driver_utilisation_after_warmup_pct"]
    assert "<td class='help'></td>" not in render_html(result)
