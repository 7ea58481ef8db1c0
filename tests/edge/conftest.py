"""The connection edge against real `ridehail serve` processes (uvicorn, the event loop, the
engine's threads), on SQLite: each test starts the server with the limits it exercises."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import Server, start_server
from tests.rides.conftest import PICKUP, Account, Api, go_online


async def asgi_request(app: Callable[..., Awaitable[None]], method: str, path: str,
                       chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None,
                       query: bytes = b"", disconnect: bool = False
                       ) -> tuple[list[dict[str, Any]], int]:
    """One HTTP request through an ASGI app, in process, the body in `chunks`: the messages
    the app sent, and how many body messages it read."""
    sent: list[dict[str, Any]] = []
    read = 0

    async def receive() -> dict[str, Any]:
        nonlocal read
        if disconnect:
            return {"type": "http.disconnect"}
        read += 1
        i = read - 1
        return {"type": "http.request", "body": chunks[i] if i < len(chunks) else b"",
                "more_body": i < len(chunks) - 1}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query,
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000),
             "client": ("10.1.2.3", 5555), "root_path": "", "headers": headers or []}
    await app(scope, receive, send)
    return sent, read


@pytest.fixture
def edge_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """`edge_server(**env)` starts a server on a SQLite file of this test (a second call
    after the first stopped serves the same database: a restart)."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        srv = start_server({
            "RIDEHAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'edge.db'}",
            "RIDEHAIL_VAR_DIR": str(tmp_path),
            "RIDEHAIL_THREADS": "8",
            **{f"RIDEHAIL_{k.upper()}": v for k, v in env.items()},
        })
        started.append(srv)
        return srv

    yield start
    for srv in started:
        if srv.proc.poll() is None:
            srv.stop()


def ws_url(server: Server, token: str) -> str:
    return server.url.replace("http://", "ws://") + f"/v1/drivers/me/ws?access_token={token}"


def open_ws(server: Server, who: Account) -> ClientConnection:
    return connect(ws_url(server, who.token), open_timeout=10, max_size=2**20, legacy=True)


def frame(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return got


def next_of(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame of `kind`, skipping others (acks, offers...)."""
    deadline = time.monotonic() + timeout
    while True:
        got = frame(ws, max(0.01, deadline - time.monotonic()))
        if got["type"] == kind:
            return got


def close_code(ws: ClientConnection, timeout: float = 10.0) -> int:
    """Read until the server closes the socket; its close code."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code
    except TimeoutError:
        pass
    raise AssertionError(f"the socket was still open after {timeout} s")


class Events:
    """A Server-Sent Events stream, read line by line."""

    def __init__(self, server: Server, trip_id: str, token: str) -> None:
        self.resp = requests.get(f"{server.url}/v1/trips/{trip_id}/events",
                                 headers={"Authorization": f"Bearer {token}"},
                                 stream=True, timeout=(5, 30))
        self.lines = self.resp.iter_lines(decode_unicode=True)

    def next(self) -> tuple[str, Any]:
        """The next event (name, data); comments are skipped."""
        name, data = "message", None
        for line in self.lines:
            if line is None or line.startswith(":"):
                continue
            if line == "":
                if data is not None:
                    return name, data
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data = json.loads(value)
        raise AssertionError("the stream ended")

    def until(self, name: str, check: Callable[[Any], bool] = lambda _d: True) -> Any:
        while True:
            got, data = self.next()
            if got == name and check(data):
                return data
            if got == "close" and name != "close":
                raise AssertionError(f"the stream closed ({data}) before {name}")

    def close(self) -> None:
        self.resp.close()


def online_here(api: Api, driver: Account, rider: Account) -> None:
    """The driver online at the pickup, and visible to dispatch: the index publishes every
    50 ms, so a trip requested at once could find nobody."""
    go_online(api, driver, PICKUP["lat"], PICKUP["lng"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        near = api.get(f"/v1/vehicles/nearby?lat={PICKUP['lat']}&lng={PICKUP['lng']}",
                       rider.token)
        if near.status == 200 and near.body["features"]:
            return
    raise AssertionError("the driver never showed up near the pickup")
