"""Simulation reports: ``report.json`` and a self-contained ``report.html``.

The simulator core fills a `SimulationResult` and calls `write_report(result, out_dir)`:

``kpis: dict[str, float | int | None]``
    The figures. Known keys, their labels and explanations are `report_text.KPI_SPECS`
    (headline first: ``served_pct``, ``pickup_wait_p50_s``, ``pickup_wait_p90_s``,
    ``driver_utilisation_after_warmup_pct``, ...; percentages are 0-100, waits in seconds,
    computed from `waits_s` when absent; a missing one shows as "n/a"). Any other key is shown
    after them under its own name.
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

The HTML reads top-down: the headline figures with what each means, the other figures, the
charts, and the configuration last. It uses inline CSS and inline SVG only: no scripts, fonts
or URLs. ``report.json`` carries the same explanations under ``descriptions``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h3
import numpy as np

from .report_charts import esc, finite, histogram_svg, map_svg, timeseries_svg
from .report_text import KPI_SPECS, PARAM_HELP

__all__ = ["KPI_SPECS", "SimulationResult", "render_html", "report_json", "write_report"]

SCHEMA = "ridehail.simulation_report/1"

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


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null, tuples lists, keys strings."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float | np.floating):
        return finite(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return str(obj)


def _kpis(result: SimulationResult) -> dict[str, float | int | None]:
    kpis = dict(result.kpis)
    waits = np.array([w for w in (finite(x) for x in result.waits_s) if w is not None])
    for key, q in _WAIT_PERCENTILES:
        if kpis.get(key) is None and len(waits):
            kpis[key] = round(float(np.percentile(waits, q)), 3)
    return kpis


def _histogram(waits_s: list[float], bins: int = 30) -> tuple[list[float], list[int]]:
    w = np.array([x for x in (finite(v) for v in waits_s) if x is not None and x >= 0])
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
        demand = finite(result.cell_demand.get(cell, 0)) or 0.0
        supply = finite(result.cell_supply.get(cell, 0)) or 0.0
        ratio = demand / supply if supply > 0 else (None if demand > 0 else 0.0)
        out.append({"cell": cell, "demand": demand, "supply": supply, "ratio": ratio})
    return out


def report_json(result: SimulationResult) -> dict[str, Any]:
    """The ``report.json`` document (plain JSON types, NaN as null)."""
    edges, counts = _histogram(result.waits_s)
    waits = [w for w in (finite(x) for x in result.waits_s) if w is not None]
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
        "descriptions": _descriptions(result),
    }
    cleaned: dict[str, Any] = _clean(doc)
    return cleaned


def _descriptions(result: SimulationResult) -> dict[str, dict[str, str]]:
    """What each figure and setting of this report means, for readers of the JSON."""
    return {
        "kpis": {f.key: f"{f.label}: {f.help}" for f in KPI_SPECS},
        "params": {k: PARAM_HELP[k] for k in sorted(result.params) if k in PARAM_HELP},
    }


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
td.v{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.help{color:#555;font-size:13px}
table.headline td.v{font-size:18px;font-weight:600}
svg{background:#fafafa;border:1px solid #e4e4e4}
svg text{font:11px system-ui,sans-serif;fill:#444}
.small{color:#666;font-size:12px}
"""


def _fmt(value: Any, kind: str, currency: str) -> str:
    v = finite(value)
    if v is None:
        return "n/a"
    if kind == "pct":
        return f"{v:.1f} %"
    if kind == "s":
        text = f"{v:.0f} s" if v >= 10 else f"{v:.1f} s"
        return f"{text} ({v / 60:.0f} min)" if v >= 120 else text
    if kind == "km":
        return f"{v:,.1f} km"
    if kind == "money":
        return f"{currency} {v:,.2f}"
    if isinstance(value, int) or v.is_integer():
        return f"{v:,.0f}"
    return f"{v:,.2f}"


def _duration(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h} h" if h else "", f"{m} min" if m else "", f"{s} s" if s else ""]
    return " ".join(p for p in parts if p) or "0 s"


def _table(rows: Sequence[tuple[str, ...]], cls: str = "") -> str:
    body = "".join(
        f"<tr><th>{esc(r[0])}</th><td class='v'>{esc(r[1])}</td>"
        + "".join(f"<td class='help'>{esc(x)}</td>" for x in r[2:]) + "</tr>"
        for r in rows
    )
    return f"<table class='{cls}'>{body}</table>" if cls else f"<table>{body}</table>"


def _summary(doc: dict[str, Any]) -> str:
    """One sentence on what was simulated, and what the figures cover."""
    p, k = doc["params"], doc["kpis"]
    what = []
    if finite(k.get("requests")) is not None:
        what.append(f"{_fmt(k['requests'], 'num', '')} ride requests")
    if finite(p.get("duration_s")):
        what.append(f"over {_duration(float(p['duration_s']))} of simulated demand")
    if p.get("city_name"):
        what.append(f"in {p['city_name']}")
    fleet = []
    if finite(p.get("drivers")) is not None:
        fleet.append(f"{_fmt(p['drivers'], 'num', '')} drivers")
    if p.get("policy"):
        fleet.append(f"{p['policy']} dispatch")
    lead = " ".join(what) + (", " + ", ".join(fleet) if fleet else "")
    cover = ("Every request made during the demand window is followed to its end (trips still "
             "open when it closes are finished in a drain); driver utilisation covers the "
             "demand window only.")
    return f"<p>{esc(lead + '. ' if lead else '')}{esc(cover)}</p>"


def render_html(result: SimulationResult, doc: dict[str, Any] | None = None) -> str:
    """The self-contained ``report.html`` text: headline first, configuration last."""
    doc = report_json(result) if doc is None else doc
    kpis, cur = doc["kpis"], result.currency
    known = {f.key for f in KPI_SPECS}
    head = [(f.label, _fmt(kpis.get(f.key), f.kind, cur), f.help) for f in KPI_SPECS
            if f.headline]
    more = [(f.label, _fmt(kpis.get(f.key), f.kind, cur), f.help) for f in KPI_SPECS
            if not f.headline]
    more += [(k, _fmt(kpis[k], "num", cur), "") for k in sorted(kpis) if k not in known]
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(result.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(result.title)}</h1>",
    ]
    if result.generated_at:
        parts.append(f"<p class='small'>Generated {esc(result.generated_at)}</p>")
    parts.append("<h2>Headline figures</h2>" + _summary(doc) + _table(head, "headline"))
    parts.append("<h2>More figures</h2>" + _table(more))
    if any(doc["demand_rejected"].values()):
        rej = [(k, str(v)) for k, v in doc["demand_rejected"].items()]
        parts.append("<h2>Rejected demand rows</h2><p>Rows of the demand file that were not "
                     "replayed, by reason (bad coordinates, outside the city, ...).</p>"
                     + _table(rej))
    hist = doc["pickup_waits"]["histogram"]
    parts.append("<h2>Pickup wait</h2><p>Time from a ride request to the driver's arrival, "
                 "for every served request.</p>"
                 + histogram_svg(hist["bin_edges_s"], hist["counts"]))
    parts.append("<h2>Utilisation and served % over time</h2><p>Per interval: the share of "
                 "online drivers' time spent on a pickup or a trip, and the share of that "
                 "interval's requests that were served. The shaded start is the warm-up the "
                 "headline utilisation leaves out.</p>"
                 + timeseries_svg(doc["timeseries"], finite(kpis.get("warmup_s"))))
    size = ""
    if doc["cells"]:
        res = h3.get_resolution(doc["cells"][0]["cell"])
        size = f" (H3 resolution {res}, about {h3.average_hexagon_area(res, 'km^2'):.2g} km²)"
    parts.append("<h2>Demand against supply per H3 cell</h2><p>Requests against the mean "
                 f"number of idle drivers in each hexagon{esc(size)}. Blue: spare drivers; "
                 "red: short of drivers; darkest red: requests and no idle driver.</p>")
    parts.append(map_svg(doc["cells"], result.city_outline))
    if doc["params"]:
        conf = [(k, str(v), PARAM_HELP.get(k, "")) for k, v in sorted(doc["params"].items())]
        parts.append("<h2>Configuration</h2><p>The run's settings and facts, as recorded in "
                     "report.json's <code>params</code>.</p>" + _table(conf))
    parts.append("</body></html>\n")
    return "\n".join(parts)
