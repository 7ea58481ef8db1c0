"""The reference web apps in headless Chromium (Debian's, `shutil.which("chromium")`) against a
real `ridehail serve` (tests/edge's `edge_server`). Without chromium these tests fail, saying
so (`tests.conftest.chromium_path`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CHROMIUM_ARGS, ROOT, chromium_path
from tests.edge.conftest import edge_server  # noqa: F401  (the edge tests' server, reused)

PHONE = {"width": 390, "height": 844}  # an iPhone 12-14's CSS viewport


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path("the web apps' browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Console:
    """Every console error and uncaught exception of a page: a test ends asserting none."""
    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any, name: str) -> Any:
        page.on("console", lambda m: self.errors.append(f"{name}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"{name}: uncaught {e}"))
        return page


def open_app(browser: Any, url: str, app: str, console: Console, name: str) -> tuple[Any, Any]:
    """A fresh browser context (its own storage: one person) on a phone-sized viewport."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    page = console.watch(context.new_page(), name)
    page.goto(f"{url}/app/{app}")
    page.wait_for_selector("#auth:not([hidden])")
    return context, page


def sign_up(page: Any, name: str, email: str, password: str,
            vehicle: dict[str, str] | None = None) -> None:
    page.click("#tab-signup")
    page.fill("#signup-name", name)
    page.fill("#signup-email", email)
    page.fill("#signup-password", password)
    for key, value in (vehicle or {}).items():
        page.fill(f"#vehicle-{key}", value)
    page.click("#signup-form button[type=submit]")
    page.wait_for_selector("body[data-ready=true]")


def map_click(page: Any, lat: float, lng: float, app: str) -> None:
    """A tap on the map at (lat, lng)."""
    at = page.evaluate(f"window.{app}App.map.latLngToContainerPoint([{lat}, {lng}])")
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + at["x"], box["y"] + at["y"])


# The README's pictures are rewritten only when asked (`make screenshots` sets
# RIDEHAIL_REFRESH_SCREENSHOTS=1); otherwise they go to the test's temporary folder.
REFRESH = os.environ.get("RIDEHAIL_REFRESH_SCREENSHOTS") == "1"


def screenshot(page: Any, name: str, tmp_path: Path, show: str = "#panel",
               block: str = "start") -> Path:
    """The page as a phone shows it, once the base map has drawn, with the panel scrolled
    to `show` (at the `block` edge)."""
    path = (ROOT / "docs" / f"app-{name}.png") if REFRESH else tmp_path / f"app-{name}.png"
    page.wait_for_function("() => document.querySelectorAll('.leaflet-overlay-pane path')"
                           ".length > 20")
    page.locator(show).evaluate("(e, block) => e.scrollIntoView({block})", block)
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    return path
