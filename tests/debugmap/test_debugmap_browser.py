"""The debug map in headless Chromium against a real server with a small simulated fleet: the
layers render what the API returns, a click explains a nearest query, a trip click shows its
dispatch record, refreshes update layers in place, and a screenshot is taken (into docs/, for
the README, only when RIDEHAIL_REFRESH_SCREENSHOTS=1). Without chromium the test fails."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import CHROMIUM_ARGS, ROOT, Server, chromium_path, start_server
from tests.debugmap.conftest import Fleet, build_fleet
from tests.rides.conftest import PICKUP, Api

# Only the PostgreSQL and Redis tests may skip: a missing browser fails (CI installs Debian's).
pytestmark = [pytest.mark.browser]
# The README's picture is rewritten only when asked (RIDEHAIL_REFRESH_SCREENSHOTS=1); by
# default the screenshot goes to the test's temporary folder, leaving the work tree clean.
DOCS_SCREENSHOT = ROOT / "docs" / "debug-map.png"


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path("the debug-map browser test")


def screenshot_path(tmp_path: Path) -> Path:
    if os.environ.get("RIDEHAIL_REFRESH_SCREENSHOTS") == "1":
        return DOCS_SCREENSHOT
    return tmp_path / "debug-map.png"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, Fleet]]:
    tmp = tmp_path_factory.mktemp("debugmap")
    env = {
        # the embedded mode on SQLite, whatever the CI environment says, with the map private
        # so the page has to pass its admin token on to every fetch
        "RIDEHAIL_DATABASE_URL": f"sqlite:///{tmp / 'ridehail.db'}",
        "RIDEHAIL_REDIS_URL": "",
        "RIDEHAIL_VAR_DIR": str(tmp),
        "RIDEHAIL_DEBUG_PUBLIC": "false",
        # nothing may expire while the browser looks: drivers stay fresh, the offer pending
        "RIDEHAIL_LOCATION_TTL_S": "3600",
        "RIDEHAIL_OFFER_TIMEOUT_S": "3600",
    }
    server = start_server(env)
    try:
        token = subprocess.run(
            [sys.executable, "-m", "ridehail.cli", "accounts", "create-admin", "ops@example.com"],
            env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]
        api = Api(server.url)
        fleet = build_fleet(api, lambda: _wait_published(server.url, token, 6))
        yield server, token, fleet
    finally:
        server.stop()


def _wait_published(url: str, token: str, drivers: int) -> None:
    """Until the publisher thread has put every driver in a snapshot (bounded)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        snap = requests.get(f"{url}/debug/snapshot", params={"access_token": token},
                            timeout=5).json()
        if snap["drivers"]["total"] >= drivers:
            return
        time.sleep(0.05)
    raise AssertionError(f"the index never published {drivers} drivers: {snap}")


def _get(server: Server, token: str, path: str, **params: Any) -> Any:
    r = requests.get(server.url + path, params={**params, "access_token": token}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_map_shows_the_fleet_explains_a_query_and_a_trip(
        chromium: str, served: tuple[Server, str, Fleet], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    server, token, fleet = served
    screenshot = screenshot_path(tmp_path)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/debug/map?access_token={token}")
            page.wait_for_function("window.debugMap && window.debugMap.ready === true")
            _layers_match_the_api(page, server, token, fleet)
            _refresh_updates_in_place(page)
            page.evaluate(f"window.debugMap.map.setView([{PICKUP['lat']}, {PICKUP['lng']}], 16)")
            page.wait_for_function(
                "document.querySelectorAll('path.trip-line').length === 1"
                " && window.debugMap.bbox && window.debugMap.bbox.startsWith('-73.9')")
            _click_explains_nearest(page, server, token, fleet)
            _trip_click_shows_record(page, server, token, fleet)
            _step_back_and_live(page)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.evaluate(f"window.debugMap.map.setView([{PICKUP['lat'] - 0.002}, "
                          f"{PICKUP['lng']}], 15)")
            page.wait_for_function("document.body.dataset.ready === 'true'")
            page.screenshot(path=str(screenshot))
            assert screenshot.stat().st_size > 10_000
            assert errors == [], errors
        finally:
            browser.close()


def _layers_match_the_api(page: Any, server: Server, token: str, fleet: Fleet) -> None:
    dm = page.evaluate("({counts: window.debugMap.counts, bbox: window.debugMap.bbox,"
                       " resolution: window.debugMap.resolution,"
                       " version: window.debugMap.shownVersion})")
    cells = _get(server, token, "/debug/cells.geojson", bbox=dm["bbox"],
                 resolution=dm["resolution"], version=dm["version"])
    drivers = _get(server, token, "/debug/drivers.geojson", bbox=dm["bbox"], version=dm["version"])
    trips = _get(server, token, "/debug/trips.geojson", bbox=dm["bbox"])
    assert len(drivers["features"]) == 6  # the whole fleet is in the first view
    assert dm["counts"]["drivers"] == len(drivers["features"])
    assert dm["counts"]["cells"] == len(cells["features"]) > 0
    assert dm["counts"]["trips"] == len(trips["features"]) == 1
    # what is counted is also drawn, and the panel shows the counts
    assert page.locator("path.driver").count() == 6
    assert page.locator("path.trip-line").count() == 1
    assert page.get_attribute("#count-drivers", "data-count") == "6"
    snap = _get(server, token, "/debug/snapshot", version=dm["version"])
    assert page.text_content("#snap-total") == str(snap["drivers"]["total"]) == "6"
    assert page.text_content("#snap-available") == str(snap["drivers"]["available"])


def _refresh_updates_in_place(page: Any) -> None:
    page.evaluate("""() => { window.__marked = document.querySelector('path.driver');
                             window.__before = window.debugMap.refreshes; }""")
    page.wait_for_function("window.debugMap.refreshes > window.__before", timeout=20_000)
    assert page.evaluate("window.__marked.isConnected"), "a refresh replaced the driver marker"


def _click_explains_nearest(page: Any, server: Server, token: str, fleet: Fleet) -> None:
    # k=3 keeps the search within a few rings (asking for more drivers than are eligible
    # makes the index fall back to a scan that reports no rings or filters).
    page.fill("#k", "3")
    # East of the pickup, clear of drivers and of the trip line.
    at = page.evaluate(f"window.debugMap.map.latLngToContainerPoint("
                       f"[{PICKUP['lat']}, {PICKUP['lng'] + 0.0008}])")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + at["x"], box["y"] + at["y"])
    page.wait_for_selector("#nearest:not([hidden]) #nearest-found")
    q = page.evaluate("window.debugMap.nearestAt")
    api = _get(server, token, "/debug/nearest.geojson", lat=q["lat"], lng=q["lng"], k=q["k"],
               radius_m=q["radius_m"], version=q["version"])
    x = api["meta"]["explain"]
    # the xl driver and the two nearest available standard ones; the offered driver, nearer
    # than the third, is filtered out as unavailable
    assert len(x["found"]) == 3 and x["filtered_counts"]["unavailable"] == 1
    assert fleet.offered_to not in {n["driver_id"] for n in x["found"]}
    assert page.get_attribute("#nearest-found", "data-count") == "3"
    shown = page.locator("#nearest-found code").all_text_contents()
    assert shown == [n["driver_id"] for n in x["found"]]
    assert page.text_content('#nearest-filtered td[data-reason="unavailable"]') == "1"
    assert page.text_content("#nearest-examined") == str(x["candidates_examined"])
    assert page.text_content("#nearest-rings") == str(x["rings_searched"])


def _trip_click_shows_record(page: Any, server: Server, token: str, fleet: Fleet) -> None:
    page.locator("path.trip-line").click()
    page.wait_for_selector("#record:not([hidden]) #record-candidates")
    assert page.text_content("#record-trip") == fleet.trip["id"]
    rec = _get(server, token, f"/debug/trips/{fleet.trip['id']}/record")
    rows = page.locator("#record-candidates tr").all()[1:]
    shown = [(r.locator("code").text_content(), r.locator("td.outcome").text_content())
             for r in rows]
    assert shown == [(c["driver_id"], c["outcome"]) for c in rec["candidates"]]
    assert shown == [(fleet.rejected_by, "rejected"), (fleet.offered_to, "pending")]
    assert "class: 1" in page.text_content("#record-searches")


def _step_back_and_live(page: Any) -> None:
    live = int(page.get_attribute("#snapshot", "data-version"))
    page.click("#step-back")
    page.wait_for_function(f"Number(document.querySelector('#snapshot').dataset.version) < {live}"
                           " && window.debugMap.version !== null")
    assert page.text_content("#snap-mode").startswith("past")
    page.click("#go-live")
    page.wait_for_function(f"Number(document.querySelector('#snapshot').dataset.version) >= {live}"
                           " && window.debugMap.version === null")
    assert page.text_content("#snap-mode") == "live"
