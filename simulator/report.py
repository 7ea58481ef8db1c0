"""Simulation reports: ``report.json`` and a self-contained ``report.html``.

The simulator core fills a `SimulationResult` and calls `write_report(result, out_dir)`:

``kpis: dict[str, float | int | None]``
    Headline figures. Known keys (shown first, in this order; a missing one shows as "n/a"):
    ``served_pct``, ``no_driver_pct``, ``rider_cancel_pct`` (percent of requests, 0-100),
    ``pickup_wait_p50_s``, ``pickup_wait_p90_s``, ``pickup_wait_p99_s`` (seconds; computed from
    `waits_s` when absent), ``offer_acceptance_pct`` (accepted / offers), ``driver_utilisation_pct``
    (on-trip or en-route time / online time), ``empty_km_pct`` (km without a rider / all km),
    ``trips_per_hour`` (completed), ``revenue`` (in `currency`). Any other key is shown after them.
``waits_s: list[float]``
    Pickup wait of every served request (request to driver arrival), for the histogram.
``timeseries: list[dict[str, float]]``
    One point per sampling interval: ``t_s`` (seconds from the start), ``utilisation_pct`` and
    ``served_pct`` (0-100, over that interval). Extra keys are kept in the JSON.
``cell_demand: dict[str, int]``, ``cell_supply: dict[str, float]``
    Per H3 cell (any one resolution, as h3 strings): requests, and available supply (e.g. mean
    idle drivers) over the run. The map colours each cell by demand / supply.
``city_outline: list[list[tuple[float, float]]]``
    Rings of ``(lat, lng)``, e.g. `simulator.city.City.outline()`.
``title``, ``params`` (the run's flags and facts, echoed as given: seed, drivers, city, ...),
``demand_rejected`` (rejected demand rows by reason), ``currency``, ``generated_at`` (optional
text; the report holds no clock reading of its own, so the same input gives the same bytes).

The HTML uses inline CSS and inline SVG only: no scripts, fonts or URLs.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h3
import numpy as np

__all__ = ["KPI_SPECS", "SimulationResult", "render_html", "report_json", "write_report"]

SCHEMA = "ridehail.simulation_report/1"

# (key, label, kind) where kind is pct | s | num | money
KPI_SPECS: tuple[tuple[str, str, str], ...] = (
    ("served_pct", "Served", "pct"),
    ("no_driver_pct", "No driver found", "pct"),
    ("rider_cancel_pct", "Rider cancelled", "pct"),
    ("pickup_wait_p50_s", "Pickup wait p50", "s"),
    ("pickup_wait_p90_s", "Pickup wait p90", "s"),
    ("pickup_wait_p99_s", "Pickup wait p99", "s"),
    ("offer_acceptance_pct", "Offer acceptance", "pct"),
    ("driver_utilisation_pct", "Driver utilisation", "pct"),
    ("empty_km_pct", "Empty km share", "pct"),
    ("trips_per_hour", "Trips per hour", "num"),
    ("revenue", "Revenue", "money"),
)
_WAIT_PERCENTILES = (
    ("pickup_wait_p50_s", 50.0),
    ("pickup_wait_p90_s", 90.0),
    ("pickup_wait_p99_s", 99.0),
)


@dataclass
class SimulationResult:
    kpis: dict[str, float | int | None]
    waits_s: list[float] = field(default_factory=list)
    timeseries: list[dict[str, float]] = field(default_factory=list)
    cell_demand: dict[str, int] = field(default_factory=dict)
    cell_supply: dict[str, float] = field(default_factory=dict)
    city_outline: list[list[tuple[float, float]]] = field(default_factory=list)
    title: str = "ridehail simulation"
    params: dict[str, Any] = field(default_factory=dict)
    demand_rejected: dict[str, int] = field(default_factory=dict)
    currency: str = "USD"
    generated_at: str | None = None


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null, tuples lists, keys strings."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float | np.floating):
        return _finite(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return str(obj)


def _kpis(result: SimulationResult) -> dict[str, float | int | None]:
    kpis = dict(result.kpis)
    waits = np.array([w for w in (_finite(x) for x in result.waits_s) if w is not None])
    for key, q in _WAIT_PERCENTILES:
        if kpis.get(key) is None and len(waits):
            kpis[key] = round(float(np.percentile(waits, q)), 3)
    return kpis


def _histogram(waits_s: list[float], bins: int = 30) -> tuple[list[float], list[int]]:
    w = np.array([x for x in (_finite(v) for v in waits_s) if x is not None and x >= 0])
    if not len(w):
        return [], []
    top = float(np.percentile(w, 99)) or float(w.max()) or 1.0
    step = _nice_step(top / bins)
    n = max(1, math.ceil(top / step))
    edges = [i * step for i in range(n + 1)]
    counts, _ = np.histogram(np.minimum(w, edges[-1]), bins=np.array(edges))
    return edges, [int(c) for c in counts]  # the last bin holds everything above p99 too


def _nice_step(raw: float) -> float:
    for s in (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if s >= raw:
            return float(s)
    return float(math.ceil(raw / 3600) * 3600)


def _cells(result: SimulationResult) -> list[dict[str, Any]]:
    out = []
    for cell in sorted(set(result.cell_demand) | set(result.cell_supply)):
        if not h3.is_valid_cell(cell):
            raise ValueError(f"not an H3 cell: {cell!r}")
        demand = _finite(result.cell_demand.get(cell, 0)) or 0.0
        supply = _finite(result.cell_supply.get(cell, 0)) or 0.0
        ratio = demand / supply if supply > 0 else (None if demand > 0 else 0.0)
        out.append({"cell": cell, "demand": demand, "supply": supply, "ratio": ratio})
    return out


def report_json(result: SimulationResult) -> dict[str, Any]:
    """The ``report.json`` document (plain JSON types, NaN as null)."""
    edges, counts = _histogram(result.waits_s)
    waits = [w for w in (_finite(x) for x in result.waits_s) if w is not None]
    doc = {
        "schema": SCHEMA,
        "title": result.title,
        "generated_at": result.generated_at,
        "params": result.params,
        "kpis": _kpis(result),
        "currency": result.currency,
        "pickup_waits": {
            "count": len(waits),
            "mean_s": sum(waits) / len(waits) if waits else None,
            "histogram": {"bin_edges_s": edges, "counts": counts},
        },
        "timeseries": result.timeseries,
        "cells": _cells(result),
        "demand_rejected": result.demand_rejected,
    }
    cleaned: dict[str, Any] = _clean(doc)
    return cleaned


def write_report(result: SimulationResult, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into `out_dir` (created); return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "report.json", out / "report.html"
    doc = report_json(result)
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False)
    json_path.write_text(text + "\n", encoding="utf-8")
    html_path.write_text(render_html(result, doc), encoding="utf-8")
    return json_path, html_path


# --- HTML -----------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.v{text-align:right;font-variant-numeric:tabular-nums}
svg{background:#fafafa;border:1px solid #e4e4e4}
svg text{font:11px system-ui,sans-serif;fill:#444}
.small{color:#666;font-size:12px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(value: Any, kind: str, currency: str) -> str:
    v = _finite(value)
    if v is None:
        return "n/a"
    if kind == "pct":
        return f"{v:.1f} %"
    if kind == "s":
        return f"{v:.0f} s" if v >= 10 else f"{v:.1f} s"
    if kind == "money":
        return f"{currency} {v:,.2f}"
    if isinstance(value, int) or v.is_integer():
        return f"{v:,.0f}"
    return f"{v:,.2f}"


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td class='v'>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def render_html(result: SimulationResult, doc: dict[str, Any] | None = None) -> str:
    """The self-contained ``report.html`` text."""
    doc = report_json(result) if doc is None else doc
    kpis = doc["kpis"]
    known = {k for k, _, _ in KPI_SPECS}
    rows = [(label, _fmt(kpis.get(k), kind, result.currency)) for k, label, kind in KPI_SPECS]
    rows += [(k, _fmt(kpis[k], "num", result.currency)) for k in sorted(kpis) if k not in known]
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(result.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(result.title)}</h1>",
    ]
    if result.generated_at:
        parts.append(f"<p class='small'>Generated {_e(result.generated_at)}</p>")
    if doc["params"]:
        parts.append(
            "<h2>Run</h2>" + _table([(k, str(v)) for k, v in sorted(doc["params"].items())])
        )
    parts.append("<h2>Key figures</h2>" + _table(rows))
    if any(doc["demand_rejected"].values()):
        rej = [(k, str(v)) for k, v in doc["demand_rejected"].items()]
        parts.append("<h2>Rejected demand rows</h2>" + _table(rej))
    hist = doc["pickup_waits"]["histogram"]
    parts.append("<h2>Pickup wait</h2>" + _histogram_svg(hist["bin_edges_s"], hist["counts"]))
    parts.append("<h2>Utilisation and served % over time</h2>" + _timeseries_svg(doc["timeseries"]))
    parts.append("<h2>Demand against supply per H3 cell</h2>")
    parts.append(_map_svg(doc["cells"], result.city_outline))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _n(x: float) -> str:
    return f"{x:.1f}"


def _empty_svg(w: int, h: int, msg: str) -> str:
    return (
        f"<svg width='{w}' height='{h}' viewBox='0 0 {w} {h}' role='img'>"
        f"<text x='{w // 2}' y='{h // 2}' text-anchor='middle'>{_e(msg)}</text></svg>"
    )


def _histogram_svg(edges: list[float], counts: list[int], w: int = 720, h: int = 260) -> str:
    if not counts:
        return _empty_svg(w, h, "no served requests")
    left, right, top, bottom = 50, 10, 10, 35
    pw, ph = w - left - right, h - top - bottom
    cmax = max(counts) or 1
    bw = pw / len(counts)
    out = [f"<svg width='{w}' height='{h}' viewBox='0 0 {w} {h}' role='img'>"]
    for i, c in enumerate(counts):
        bh = ph * c / cmax
        x, y = left + i * bw, top + ph - bh
        tip = f"{edges[i]:.0f}-{edges[i + 1]:.0f} s: {c}"
        out.append(
            f"<rect x='{_n(x + 1)}' y='{_n(y)}' width='{_n(max(bw - 2, 1))}' "
            f"height='{_n(bh)}' fill='#4a7fb5'><title>{_e(tip)}</title></rect>"
        )
    out.append(_axes(left, top, pw, ph))
    for i in range(0, len(edges), max(1, len(edges) // 8)):
        x = left + i * bw
        out.append(f"<text x='{_n(x)}' y='{h - 18}' text-anchor='middle'>{edges[i]:.0f}</text>")
    out.append(
        f"<text x='{left + pw / 2:.0f}' y='{h - 3}' text-anchor='middle'>wait (s); "
        "the last bar includes everything above it</text>"
    )
    out.append(f"<text x='{left - 6}' y='{top + 10}' text-anchor='end'>{cmax}</text>")
    out.append(f"<text x='{left - 6}' y='{top + ph}' text-anchor='end'>0</text></svg>")
    return "".join(out)


def _axes(left: float, top: float, pw: float, ph: float) -> str:
    return f"<path d='M{left} {top}V{_n(top + ph)}H{_n(left + pw)}' fill='none' stroke='#888'/>"


_SERIES = (("utilisation_pct", "utilisation %", "#d9822b"), ("served_pct", "served %", "#2b8a3e"))


def _timeseries_svg(points: list[dict[str, Any]], w: int = 720, h: int = 260) -> str:
    ts = [p for p in points if _finite(p.get("t_s")) is not None]
    if not ts:
        return _empty_svg(w, h, "no time series")
    left, right, top, bottom = 50, 130, 10, 35
    pw, ph = w - left - right, h - top - bottom
    t0 = min(float(p["t_s"]) for p in ts)
    t1 = max(float(p["t_s"]) for p in ts)
    span = (t1 - t0) or 1.0
    out = [f"<svg width='{w}' height='{h}' viewBox='0 0 {w} {h}' role='img'>"]
    for pct in (0, 25, 50, 75, 100):
        y = top + ph * (1 - pct / 100)
        out.append(
            f"<path d='M{left} {_n(y)}H{left + pw}' stroke='#e6e6e6'/>"
            f"<text x='{left - 6}' y='{_n(y + 4)}' text-anchor='end'>{pct}</text>"
        )
    out.append(_axes(left, top, pw, ph))
    for k, (key, label, colour) in enumerate(_SERIES):
        xy = []
        for p in ts:
            v = _finite(p.get(key))
            if v is not None:
                x = left + pw * (float(p["t_s"]) - t0) / span
                y = top + ph * (1 - min(max(v, 0.0), 100.0) / 100)
                xy.append(f"{_n(x)},{_n(y)}")
        if xy:
            out.append(
                f"<polyline points='{' '.join(xy)}' fill='none' stroke='{colour}' "
                "stroke-width='2'/>"
            )
        ly = top + 14 + 18 * k
        out.append(
            f"<path d='M{left + pw + 12} {ly - 4}h18' stroke='{colour}' stroke-width='3'/>"
            f"<text x='{left + pw + 36}' y='{ly}'>{_e(label)}</text>"
        )
    for frac in (0, 0.25, 0.5, 0.75, 1):
        x = left + pw * frac
        minutes = (t0 + span * frac) / 60
        out.append(f"<text x='{_n(x)}' y='{h - 18}' text-anchor='middle'>{minutes:.0f}</text>")
    out.append(f"<text x='{left + pw / 2:.0f}' y='{h - 3}' text-anchor='middle'>minutes</text>")
    out.append("</svg>")
    return "".join(out)


# Diverging scale on log2(demand / supply): blue = spare supply, white = balanced, red = short.
_BLUE, _WHITE, _RED = (33, 102, 172), (247, 247, 247), (178, 24, 43)


def _ratio_colour(ratio: float | None) -> str:
    if ratio is None:  # demand with no supply at all
        return "#67001f"
    x = max(-3.0, min(3.0, math.log2(ratio))) / 3 if ratio > 0 else -1.0
    end = _RED if x > 0 else _BLUE
    a = abs(x)
    r, g, b = (round(w + (e - w) * a) for w, e in zip(_WHITE, end, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _map_svg(
    cells: list[dict[str, Any]], outline: list[list[tuple[float, float]]], w: int = 720
) -> str:
    polys = [[(float(a), float(b)) for a, b in h3.cell_to_boundary(c["cell"])] for c in cells]
    pts = [p for ring in outline for p in ring] + [p for poly in polys for p in poly]
    if not pts:
        return _empty_svg(w, 200, "no cells and no city outline")
    lats, lngs = [p[0] for p in pts], [p[1] for p in pts]
    kx = math.cos(math.radians((min(lats) + max(lats)) / 2))  # equirectangular, true at mid-lat
    pad, legend_h = 10, 40
    width_deg = max((max(lngs) - min(lngs)) * kx, 1e-9)
    height_deg = max(max(lats) - min(lats), 1e-9)
    scale = (w - 2 * pad) / width_deg
    ph = min(int(height_deg * scale), 900)
    scale = min(scale, (ph or 1) / height_deg)
    h = ph + 2 * pad + legend_h
    lng0, lat1 = min(lngs), max(lats)

    def xy(lat: float, lng: float) -> str:
        return f"{_n(pad + (lng - lng0) * kx * scale)},{_n(pad + (lat1 - lat) * scale)}"

    out = [f"<svg width='{w}' height='{h}' viewBox='0 0 {w} {h}' role='img'>"]
    for c, poly in zip(cells, polys, strict=True):
        ratio = c["ratio"]
        tip = f"{c['cell']}: demand {c['demand']:g}, supply {c['supply']:g}, ratio " + (
            "no supply" if ratio is None else f"{ratio:.2f}"
        )
        out.append(
            f"<polygon points='{' '.join(xy(a, b) for a, b in poly)}' "
            f"fill='{_ratio_colour(ratio)}' stroke='#fff' stroke-width='0.3'>"
            f"<title>{_e(tip)}</title></polygon>"
        )
    for ring in outline:
        if len(ring) >= 2:
            out.append(
                f"<polygon points='{' '.join(xy(a, b) for a, b in ring)}' fill='none' "
                "stroke='#333' stroke-width='0.8'/>"
            )
    y = h - legend_h + 12
    for i, ratio in enumerate((0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)):
        x = pad + 40 * i
        out.append(
            f"<rect x='{x}' y='{y}' width='40' height='10' fill='{_ratio_colour(ratio)}'/>"
            f"<text x='{x + 20}' y='{y + 24}' text-anchor='middle'>{ratio:g}</text>"
        )
    out.append(
        f"<text x='{pad + 300}' y='{y + 9}'>demand / supply per cell "
        "(blue: spare drivers, red: short of drivers)</text></svg>"
    )
    return "".join(out)
