"""The edge's hot paths leave no reference cycles behind. Cyclic garbage is freed only by the
garbage collector, whose collections pause the whole process: under bench/connections.py they
took 150-300 ms each, stalling every connection. Freed by reference counting instead, the
garbage costs nothing to the other connections.

Each test counts what `gc.collect()` finds unreachable after many calls with the collector
off: a REST request through the bridge (the URL map's matcher) and a connection's opening
(its request context). The pool's hand-off (ridehail/edge/pool.py) is checked here too."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from accounts.model import Role
from ridehail.app import create_app
from ridehail.edge.flaskside import authenticate, in_request
from ridehail.edge.pool import in_pool
from ridehail.edge.wsgi import FlaskBridge
from tests.conftest import make_settings
from tests.rides.conftest import PICKUP, Account, Api, sign_up_driver, sign_up_rider

CALLS = 40


def cyclic_garbage_per_call(fn: Callable[[], Any]) -> float:
    """Objects left in reference cycles by each call of `fn` (after one warm-up call)."""
    fn()
    gc.collect()
    gc.disable()
    try:
        for _ in range(CALLS):
            fn()
        return gc.collect() / CALLS
    finally:
        gc.enable()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(make_settings(tmp_path), start_background=False)
    yield app
    app.extensions["engine"].dispose()


def scope(path: str, token: str, query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "query_string": query,
            "http_version": "1.1", "scheme": "http", "server": ("testserver", 80),
            "client": ("127.0.0.1", 50000),
            "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())]}


def through_bridge(bridge: FlaskBridge, request_scope: dict[str, Any]) -> int:
    """One request through the edge's bridge to the app, on a loop: its status."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(bridge(request_scope, receive, send))
    return int(sent[0]["status"])


def test_a_rest_request_through_the_bridge_leaves_no_cyclic_garbage(app: Flask) -> None:
    rider: Account = sign_up_rider(Api(app.test_client()))
    bridge = FlaskBridge(app, workers=2, max_body=1 << 20)
    nearby = scope("/v1/vehicles/nearby", rider.token,
                   f"lat={PICKUP['lat']}&lng={PICKUP['lng']}".encode())
    try:
        assert through_bridge(bridge, nearby) == 200
        assert cyclic_garbage_per_call(lambda: through_bridge(bridge, nearby)) == 0
    finally:
        bridge.shutdown()


def test_a_connections_opening_leaves_no_cyclic_garbage(app: Flask) -> None:
    driver = sign_up_driver(Api(app.test_client()))
    opening = scope("/v1/drivers/me/ws", driver.token)

    def open_one() -> Any:
        return in_request(app, opening, lambda: authenticate(frozenset({Role.driver}), "it"))

    assert open_one().principal.account_id == driver.id
    assert cyclic_garbage_per_call(open_one) == 0


def test_the_pools_hand_off_returns_results_and_errors() -> None:
    pool = ThreadPoolExecutor(max_workers=2)

    def fail() -> None:
        raise ValueError("refused")

    async def both() -> tuple[int, str]:
        result = await in_pool(pool, pow, 2, 10)
        try:
            await in_pool(pool, fail)
        except ValueError as exc:
            return result, str(exc)
        raise AssertionError("the error was not handed back")

    try:
        assert asyncio.run(both()) == (1024, "refused")
    finally:
        pool.shutdown()


def test_a_cancelled_wait_leaves_the_pools_answer_unclaimed() -> None:
    """The awaiting coroutine gave up (a client left): the work still finishes, and settling
    the cancelled future does not raise on the loop."""
    pool = ThreadPoolExecutor(max_workers=1)
    errors: list[dict[str, Any]] = []

    async def run() -> bool:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        started, finish = asyncio.Event(), threading.Event()
        loop = asyncio.get_running_loop()

        def work() -> str:
            loop.call_soon_threadsafe(started.set)
            finish.wait(10)
            return "done"

        task = asyncio.create_task(in_pool(pool, work))
        await started.wait()
        task.cancel()
        finish.set()
        await asyncio.wait_for(asyncio.wrap_future(pool.submit(lambda: None)), 10)
        await asyncio.sleep(0)  # the settle call, had it failed, runs here
        return task.cancelled()

    try:
        assert asyncio.run(run()) is True
        assert errors == []
    finally:
        pool.shutdown()
