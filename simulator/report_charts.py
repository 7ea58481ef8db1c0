"""The report's charts: inline SVG only (no scripts, fonts or URLs), deterministic text."""

from __future__ import annotations

import html
import math
from typing import Any

import h3

__all__ = ["histogram_svg", "map_svg", "timeseries_svg"]


def esc(x: Any) -> str:
    """Text made safe for HTML (attributes included)."""
    return html.escape(str(x), quote=True)


def finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _n(x: float) -> str:
    return f"{x:.1f}"


def _empty_svg(w: int, h: int, msg: str) -> str:
    return (
        f"<svg width='{w}' height='{h}' viewBox='0 0 {w} {h}' role='img'>"
        f"<text x='{w // 2}' y='{h // 2}' text-anchor='middle'>{esc(msg)}</text></svg>"
    )


def histogram_svg(edges: list[float], counts: list[int], w: int = 720, h: int = 260) -> str:
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
            f"height='{_n(bh)}' fill='#4a7fb5'><title>{esc(tip)}</title></rect>"
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


def timeseries_svg(points: list[dict[str, Any]], warmup_s: float | None = None, w: int = 720,
                   h: int = 260) -> str:
    """Utilisation and served % per interval; the warm-up, if any, is shaded and labelled."""
    ts = [p for p in points if finite(p.get("t_s")) is not None]
    if not ts:
        return _empty_svg(w, h, "no time series")
    left, right, top, bottom = 50, 130, 10, 35
    pw, ph = w - left - right, h - top - bottom
    t0 = min(float(p["t_s"]) for p in ts)
    t1 = max(float(p["t_s"]) for p in ts)
    span = (t1 - t0) or 1.0
    out = [f"<svg width='{w}' height='{h}' viewBox='0 0 {w} {h}' role='img'>"]
    warm = finite(warmup_s)
    if warm and warm > t0:
        ww = pw * min(warm - t0, span) / span
        out.append(f"<rect x='{left}' y='{top}' width='{_n(ww)}' height='{ph}' fill='#eee'>"
                   "<title>warm-up</title></rect>"
                   f"<text x='{_n(left + ww / 2)}' y='{top + 12}' text-anchor='middle'>"
                   "warm-up</text>")
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
            v = finite(p.get(key))
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
            f"<text x='{left + pw + 36}' y='{ly}'>{esc(label)}</text>"
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


def map_svg(
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
            f"<title>{esc(tip)}</title></polygon>"
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
