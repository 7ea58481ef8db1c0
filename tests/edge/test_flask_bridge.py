"""The Flask app behind the edge (ridehail/edge/wsgi.py): the request read whole on the loop up
to the body limit, the answer in one hop, the environ a WSGI server would build."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
from flask import Flask, jsonify, request

from ridehail.edge.wsgi import FlaskBridge
from ridehail.kernel.deferred import after_answer
from tests.conftest import Server
from tests.edge.conftest import asgi_request

LIMIT = 1024


def flask_app() -> Flask:
    app = Flask("bridge")
    app.config["MAX_CONTENT_LENGTH"] = LIMIT

    @app.post("/echo")
    def echo() -> Any:
        return jsonify(size=len(request.get_data()), body=request.get_json(silent=True),
                       addr=request.remote_addr, agent=request.headers.get("X-Tag"),
                       args=request.args.get("q"))

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    return app


def call(bridge: FlaskBridge, method: str, path: str, chunks: list[bytes],
         headers: list[tuple[bytes, bytes]] | None = None, query: bytes = b"",
         disconnect: bool = False) -> tuple[list[dict[str, Any]], int]:
    """Run one request through the bridge: what it sent, and how many body messages it read."""
    return asyncio.run(asgi_request(bridge, method, path, chunks, headers, query, disconnect))


def answer(sent: list[dict[str, Any]]) -> tuple[int, dict[bytes, bytes], bytes]:
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


def bridge_for(app: Flask) -> Iterator[FlaskBridge]:
    bridge = FlaskBridge(app, workers=2, max_body=LIMIT)
    try:
        yield bridge
    finally:
        bridge.shutdown()


def with_bridge(test: Callable[[FlaskBridge], None]) -> Callable[[], None]:
    def run() -> None:
        for bridge in bridge_for(flask_app()):
            test(bridge)
    run.__name__ = test.__name__
    return run


@with_bridge
def test_a_body_in_pieces_reaches_the_app_and_the_answer_comes_back(bridge: FlaskBridge) -> None:
    sent, _ = call(bridge, "POST", "/echo", [b'{"a": ', b'[1, 2]}'], query=b"q=x%20y",
                   headers=[(b"content-type", b"application/json"), (b"x-tag", b"one"),
                            (b"x-tag", b"two")])
    status, headers, body = answer(sent)
    assert status == 200 and headers[b"content-type"] == b"application/json"
    got = json.loads(body)
    assert got == {"size": 13, "body": {"a": [1, 2]}, "addr": "10.1.2.3",
                   "agent": "one,two", "args": "x y"}


@with_bridge
def test_a_chunked_body_past_the_limit_is_413_and_not_read_to_its_end(
        bridge: FlaskBridge) -> None:
    pieces = [b"x" * 600] * 20  # 12,000 bytes against a 1,024-byte limit, no content-length
    sent, read = call(bridge, "POST", "/echo", pieces)
    status, _, _ = answer(sent)
    assert status == 413
    assert read == 2  # 1,200 bytes read: past the limit, the rest stays unread


@with_bridge
def test_a_declared_length_past_the_limit_is_413_unread(bridge: FlaskBridge) -> None:
    sent, read = call(bridge, "POST", "/echo", [b"x" * 2000],
                      headers=[(b"content-length", b"2000")])
    assert answer(sent)[0] == 413
    assert read == 0


@with_bridge
def test_a_client_gone_before_its_body_is_never_answered(bridge: FlaskBridge) -> None:
    sent, _ = call(bridge, "POST", "/echo", [], disconnect=True)
    assert sent == []


@with_bridge
def test_an_app_error_is_a_500_problem(bridge: FlaskBridge) -> None:
    sent, _ = call(bridge, "GET", "/boom", [])
    status, headers, _ = answer(sent)
    assert status == 500


def test_over_a_real_server_a_chunked_oversized_body_is_a_413_problem(
        edge_server: Callable[..., Server]) -> None:
    srv = edge_server(max_body_bytes="4096")

    def body() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 1024

    r = requests.post(srv.url + "/v1/sessions", data=body(), timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "4096" in r.json()["detail"]
    ok = requests.post(srv.url + "/v1/sessions", json={"email": "nobody@example.com",
                                                       "password": "wrong-password-1"},
                       timeout=10)
    assert ok.status_code == 401, ok.text


def test_work_the_app_defers_runs_after_its_answer_is_handed_back() -> None:
    # A view's announcement (ridehail.kernel.deferred.after_answer) must not hold the answer:
    # the deferred work blocks until the test has the answer in hand, then runs, in order.
    release = threading.Event()
    ran: list[str] = []
    app = Flask("deferring")

    @app.post("/later")
    def later() -> Any:
        assert after_answer(lambda: (release.wait(30), ran.append("first")))
        assert after_answer(lambda: ran.append("second"))
        return jsonify(ok=True)

    for bridge in bridge_for(app):
        sent, _ = call(bridge, "POST", "/later", [b""])
        assert answer(sent)[0] == 200 and ran == []
        release.set()
        bridge.pool.shutdown(wait=True)  # the pool thread finishes what was deferred
        assert ran == ["first", "second"]


def test_outside_an_answer_nothing_is_deferred() -> None:
    # The engine called directly (the simulator, the CLI): the caller runs its work at once.
    assert after_answer(lambda: None) is False
