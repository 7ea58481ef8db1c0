"""A driver's location ping reaches the Flask app through a lane of its own
(ridehail/edge/asgi.py): answered while every thread of the main pool is held by slow
requests, and served by the lane's threads only."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from ridehail.edge.asgi import LOCATION_PING, EdgeApp, location_threads
from tests.conftest import app_factory, make_settings
from tests.edge.conftest import asgi_request
from tests.rides.conftest import PICKUP, Account, Api, go_online, sign_up_driver

HELD_S = 30.0  # the held request's own bound, should the test fail before releasing it


async def call(edge_app: EdgeApp, method: str, path: str, body: bytes = b"",
               headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, bytes]:
    (start, answer), _read = await asgi_request(edge_app, method, path, [body], headers)
    return start["status"], answer["body"]


async def ping(edge_app: EdgeApp, driver: Account, lat: float, lng: float) -> tuple[int, bytes]:
    body = json.dumps({"lat": lat, "lng": lng}).encode()
    return await call(edge_app, "POST", LOCATION_PING, body, [
        (b"authorization", f"Bearer {driver.token}".encode()),
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())])


def holding_app(make: Any) -> tuple[Flask, threading.Event, threading.Event]:
    """An app of one main-pool thread, with a route that holds its thread until released."""
    app: Flask = make(threads=1)
    entered, release = threading.Event(), threading.Event()

    @app.get("/test/hold")
    def hold() -> Response:
        entered.set()
        release.wait(HELD_S)
        return Response(status=204)

    return app, entered, release


def test_a_location_ping_is_answered_while_every_main_pool_thread_is_held(
        tmp_path: Path) -> None:
    with app_factory(lambda **o: make_settings(tmp_path, **o), start_background=False) as make:
        app, entered, release = holding_app(make)
        api = Api(app.test_client())
        driver = sign_up_driver(api)
        go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
        edge_app = EdgeApp(app)
        moved = (PICKUP["lat"] + 0.001, PICKUP["lng"])

        async def run() -> tuple[int, bytes]:
            held = asyncio.create_task(call(edge_app, "GET", "/test/hold"))
            assert await asyncio.to_thread(entered.wait, 10), "the slow request never started"
            try:
                # Through the main pool, the ping would wait behind the held request.
                return await asyncio.wait_for(ping(edge_app, driver, *moved), timeout=10)
            finally:
                release.set()
                assert (await held)[0] == 204

        try:
            status, body = asyncio.run(run())
        finally:
            release.set()
            edge_app.wsgi.shutdown()
            edge_app.pings.shutdown()
        assert status == 204, body
        index = app.extensions["dispatch"].index
        index.publish()
        position = index.snapshot().get(driver.id)
        assert position is not None and (position.lat, position.lng) == moved  # applied


def test_pings_run_on_the_lanes_threads_and_other_requests_do_not(tmp_path: Path) -> None:
    with app_factory(lambda **o: make_settings(tmp_path, **o), start_background=False) as make:
        app: Flask = make(threads=4)
        ran_on: dict[str, set[str]] = {"ping": set(), "other": set()}

        @app.before_request
        def where() -> None:
            kind = "ping" if request.path == LOCATION_PING else "other"
            ran_on[kind].add(threading.current_thread().name)

        api = Api(app.test_client())
        driver = sign_up_driver(api)
        go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
        ran_on["ping"].clear()
        ran_on["other"].clear()
        edge_app = EdgeApp(app)

        async def run() -> list[tuple[int, bytes]]:
            pings = [ping(edge_app, driver, PICKUP["lat"], PICKUP["lng"] + i * 1e-4)
                     for i in range(20)]
            others = [call(edge_app, "GET", "/health") for _ in range(20)]
            return await asyncio.gather(*pings, *others)

        try:
            answers = asyncio.run(run())
        finally:
            edge_app.wsgi.shutdown()
            edge_app.pings.shutdown()
        assert [status for status, _ in answers] == [204] * 20 + [200] * 20
        lane = {f"location_{i}" for i in range(location_threads(scaled=False))}
        assert ran_on["ping"] and ran_on["ping"] <= lane
        assert ran_on["other"] and not ran_on["other"] & lane
