"""The reference rider and driver web apps (`/app/rider`, `/app/driver`): static pages that use
the public REST API and the push channels only, as any client would.

The files are served as they are (plain ES modules, no bundler): the pages and scripts from
`ridehail/static/apps/`, Leaflet from `vendor/` there, which `make` fills from npm
(`web/package.json`, `npm run build --prefix web`), never from a CDN. Every answer of this
blueprint carries a strict Content-Security-Policy: scripts, styles and connections from this
origin only, no inline script or style, no frames; a page holding a bearer token runs nothing
it did not ship.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, request, send_from_directory

from dispatch.debugmap import STATIC as DEBUGMAP_STATIC
from ridehail.kernel.errors import Problem
from ridehail.kernel.validation import doc

STATIC = Path(__file__).resolve().parent / "static" / "apps"
VENDOR = STATIC / "vendor"
# The base layer: the neighbourhood outlines the debug map ships (no tile server needed).
BASE_LAYER = DEBUGMAP_STATIC / "nyc_neighbourhoods.geojson"

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    # 'self' covers this origin's ws:// and wss:// too (CSP 3), for the driver's WebSocket
    "connect-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

bp = Blueprint("webapps", __name__, url_prefix="/app", static_folder=str(STATIC),
               static_url_path="/static")


@bp.after_request
def _lock_down(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    return resp


@bp.before_request
def _vendor_installed() -> None:
    if request.endpoint == "webapps.base_layer":
        return
    if not (VENDOR / "leaflet.js").is_file() or not (VENDOR / "leaflet.css").is_file():
        raise Problem(503, "Service Unavailable",
                      "the web apps' Leaflet is not installed: run `make web-vendor` (npm ci "
                      f"and npm run build in web/, which fill {VENDOR})")


def _page(name: str) -> Response:
    resp = send_from_directory(STATIC, name, max_age=0)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/rider")
@doc("The reference rider web app (HTML)", responses={200: "text/html", 503: None},
     tags=["apps"], auth=False)
def rider() -> Response:
    return _page("rider.html")


@bp.get("/driver")
@doc("The reference driver web app (HTML)", responses={200: "text/html", 503: None},
     tags=["apps"], auth=False)
def driver() -> Response:
    return _page("driver.html")


@bp.get("/base.geojson")
@doc("The apps' base map: neighbourhood outlines (GeoJSON)", responses={200: "GeoJSON"},
     tags=["apps"], auth=False)
def base_layer() -> Response:
    return send_from_directory(BASE_LAYER.parent, BASE_LAYER.name, max_age=3600,
                               mimetype="application/geo+json")
