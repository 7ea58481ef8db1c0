"""The simulator's WebSocket drivers against a scripted server (websockets' own, in a thread):
the frames they send, how answers are matched, offers deduplicated, reconnects and give-ups."""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.sync.server import Server, ServerConnection, serve

from simulator import ws_driver
from simulator.http_client import Refusals
from simulator.http_mode import ws_indices
from simulator.ws_driver import WsDrivers

TIMEOUT_S = 10.0


@contextlib.contextmanager
def scripted(handler: Callable[[ServerConnection], None], **kw: Any) -> Iterator[str]:
    """A WebSocket server on a free port running `handler` per connection; its http:// URL."""
    server: Server = serve(handler, "127.0.0.1", 0, **kw)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.socket.getsockname()[1]}"
    finally:
        server.shutdown()
        thread.join(TIMEOUT_S)


@contextlib.contextmanager
def drivers(url: str, tokens: dict[int, str]) -> Iterator[tuple[WsDrivers, queue.Queue[Any]]]:
    offers: queue.Queue[Any] = queue.Queue()
    ws = WsDrivers(url, Refusals(), lambda i, offer: offers.put((i, offer)))
    ws.start(tokens)
    try:
        yield ws, offers
    finally:
        ws.close()


def answer(conn: ServerConnection, seen: queue.Queue[dict[str, Any]]) -> None:
    """Answer frames as the server does: ack a location (error if lat > 90), pong a ping."""
    for raw in conn:
        frame = json.loads(raw)
        seen.put(frame)
        if frame["type"] == "ping":
            conn.send(json.dumps({"type": "pong"}))
        elif frame["lat"] > 90:
            conn.send(json.dumps({"type": "error", "detail": "lat: must be <= 90",
                                  "field": "lat"}))
        else:
            conn.send(json.dumps({"type": "ack"}))


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_driver, "BACKOFF_MIN_S", 0.01)
    monkeypatch.setattr(ws_driver, "BACKOFF_MAX_S", 0.02)


def test_every_other_driver_is_on_the_websocket_at_half() -> None:
    assert ws_indices(6, 0.5) == {1, 3, 5}
    assert ws_indices(4, 0.0) == set() and ws_indices(3, 1.0) == {0, 1, 2}
    assert len(ws_indices(200, 0.25)) == 50
    with pytest.raises(ValueError, match="ws_share"):
        ws_indices(4, 1.5)


def test_locations_go_up_stamped_and_answers_are_matched_in_order() -> None:
    seen: queue.Queue[dict[str, Any]] = queue.Queue()
    headers: list[str | None] = []

    def handshake(conn: ServerConnection, request: Any) -> None:  # before the 101 goes out
        headers.append(request.headers.get("Authorization"))

    with scripted(lambda conn: answer(conn, seen), process_request=handshake) as url, \
            drivers(url, {7: "tok-7"}) as (ws, _offers):
        assert ws.wait_connected(TIMEOUT_S) == 1
        assert headers == ["Bearer tok-7"]
        ws.send_locations([(7, 40.75, -73.99), (8, 40.0, -74.0)])  # 8 is not ours
        first = seen.get(timeout=TIMEOUT_S)
        assert first["type"] == "location" and (first["lat"], first["lng"]) == (40.75, -73.99)
        assert first["ts"].endswith("+00:00")  # ISO 8601 with its zone
        # The acked send waits for the answer to its own frame, not an earlier one's.
        assert ws.send_location_acked(7, 40.76, -73.98) is True
        assert ws.send_location_acked(7, 91.0, 0.0) is False
        assert ws.send_location_acked(3, 40.0, -74.0) is False  # not a WebSocket driver
        stats = ws.stats()
    assert stats["locations"] == 3 and stats["acks"] == 2 and stats["errors"] == 1, stats
    assert stats["locations_unsent"] == 1, stats
    assert ws.refusals.as_dict() == {"WS /v1/drivers/me/ws error: lat: must be <= N": 1}


def test_a_quiet_driver_pings_before_the_idle_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_driver, "PING_EVERY_S", 0.1)
    seen: queue.Queue[dict[str, Any]] = queue.Queue()
    with scripted(lambda conn: answer(conn, seen)) as url, drivers(url, {0: "t"}) as (ws, _):
        assert seen.get(timeout=TIMEOUT_S) == {"type": "ping"}
        assert seen.get(timeout=TIMEOUT_S) == {"type": "ping"}
        assert ws.stats()["pings"] >= 1  # the second is counted once its send returns


def test_a_closed_socket_is_opened_again_and_repeated_offers_are_taken_once() -> None:
    attempt = itertools.count()
    seen: queue.Queue[dict[str, Any]] = queue.Queue()

    def handler(conn: ServerConnection) -> None:
        # Pending offers come again on every connection; the first one is replaced (4029).
        conn.send(json.dumps({"type": "offer", "offer": {"id": "1", "trip_id": "10"}}))
        if next(attempt) == 0:
            conn.close(4029, "replaced by a newer connection")
            return
        conn.send(json.dumps({"type": "offer", "offer": {"id": "2", "trip_id": "20"}}))
        answer(conn, seen)

    with scripted(handler) as url, drivers(url, {5: "t"}) as (ws, offers):
        got = [offers.get(timeout=TIMEOUT_S), offers.get(timeout=TIMEOUT_S)]
        assert [(i, o["id"]) for i, o in got] == [(5, "1"), (5, "2")]
        assert ws.send_location_acked(5, 40.7, -74.0) is True  # the new socket carries them
        stats = ws.stats()
    assert offers.empty()
    assert stats["connects"] == 2 and stats["reconnects"] == 1, stats
    assert stats["closed_4029"] == 1 and stats["offers"] == 2, stats
    assert stats["offers_repeated"] == 1, stats
    assert ws.refusals.matching("closed 4029") == 1


def test_a_refused_token_is_not_tried_again() -> None:
    tried = itertools.count()

    def refuse(conn: ServerConnection, request: Any) -> Any:
        next(tried)
        return conn.respond(401, "token revoked\n")

    with scripted(lambda conn: None, process_request=refuse) as url, \
            drivers(url, {0: "t"}) as (ws, _):
        # At a 10 ms backoff a driver that retried would knock dozens of times in this wait.
        assert ws.wait_connected(1.0) == 0
        stats = ws.stats()
    assert next(tried) == 1 and stats["gave_up"] == 1, stats
    assert ws.refusals.matching("401") == 1
