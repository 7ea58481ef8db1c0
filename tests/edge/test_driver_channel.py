"""The driver's channel on the edge: each limit of issue 12, against a real server."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Callable

import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import Server
from tests.edge.conftest import close_code, frame, next_of, online_here, open_ws
from tests.rides.conftest import (
    PICKUP,
    Api,
    long_poll,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)

Start = Callable[..., Server]


def test_a_fourth_socket_of_a_driver_closes_the_oldest_with_4029(edge_server: Start) -> None:
    srv = edge_server()
    driver = sign_up_driver(Api(srv.url))
    sockets = [open_ws(srv, driver) for _ in range(3)]
    for ws in sockets:  # all three are served
        ws.send(json.dumps({"type": "ping"}))
        assert frame(ws) == {"type": "pong"}
    newest = open_ws(srv, driver)
    assert close_code(sockets[0]) == 4029
    for ws in (*sockets[1:], newest):  # the others are untouched
        ws.send(json.dumps({"type": "ping", "id": 7}))
        assert frame(ws) == {"type": "pong", "id": 7}
        ws.close()


def test_a_silent_socket_is_closed_after_the_idle_timeout_and_a_talking_one_is_not(
        edge_server: Start) -> None:
    srv = edge_server(conn_idle_s="1.5")
    api = Api(srv.url)
    silent, talking = open_ws(srv, sign_up_driver(api)), open_ws(srv, sign_up_driver(api))
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:  # past the timeout, with a frame every 0.3 s
        talking.send(json.dumps({"type": "ping"}))
        assert frame(talking) == {"type": "pong"}
        time.sleep(0.3)
    assert close_code(silent, timeout=1.0) == 4008
    talking.send(json.dumps({"type": "ping"}))
    assert frame(talking) == {"type": "pong"}
    talking.close()


def test_a_frame_over_64_kib_closes_the_socket_with_1009(edge_server: Start) -> None:
    srv = edge_server()
    driver = sign_up_driver(Api(srv.url))
    ws = open_ws(srv, driver)
    ws.send(json.dumps({"type": "ping", "id": "x" * 10}) + " " * (64 * 1024 - 40))  # fits
    assert frame(ws)["type"] == "pong"
    ws.send(json.dumps({"type": "ping"}) + " " * (64 * 1024))
    assert close_code(ws) == 1009


def test_frames_beyond_the_rate_are_refused_and_dropped(edge_server: Start) -> None:
    srv = edge_server(conn_frames_per_s="5")
    driver = sign_up_driver(Api(srv.url))
    ws = open_ws(srv, driver)
    for i in range(30):
        ws.send(json.dumps({"type": "ping", "id": i}))
    answers = [frame(ws) for _ in range(30)]
    pongs = [a for a in answers if a["type"] == "pong"]
    refused = [a for a in answers if a["type"] == "error"]
    assert 10 <= len(pongs) < 30 and len(pongs) + len(refused) == 30
    assert all("frames a second" in a["detail"] for a in refused)
    ws.close()


def test_location_frames_follow_the_rest_time_rules(edge_server: Start) -> None:
    """A `ts` far ahead (the 2099 ghost) or older than the TTL is refused, naming `ts`, and
    the ghost never reaches a rider's map."""
    srv = edge_server(location_ttl_s="30")
    api = Api(srv.url)
    driver, rider = sign_up_driver(api), sign_up_rider(api)
    assert api.put("/v1/drivers/me/status", driver.token, {"status": "online"}).status == 200
    ws = open_ws(srv, driver)
    here = {"lat": PICKUP["lat"], "lng": PICKUP["lng"]}
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 120))
    for ts in ("2099-01-01T00:00:00Z", old):
        ws.send(json.dumps({"type": "location", **here, "ts": ts, "id": ts}))
        answer = frame(ws)
        assert answer["type"] == "error" and answer["field"] == "ts" and answer["id"] == ts
    near = api.get(f"/v1/vehicles/nearby?lat={here['lat']}&lng={here['lng']}", rider.token)
    assert near.status == 200 and near.body["features"] == []
    ws.send(json.dumps({"type": "location", **here, "id": "now"}))
    assert frame(ws) == {"type": "ack", "id": "now"}
    ws.close()


def _raw_handshake(srv: Server, token: str) -> socket.socket:
    host, port = srv.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /v1/drivers/me/ws?access_token={token} HTTP/1.1\r\nHost: {host}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    b0, b1 = sock.recv(1)[0], sock.recv(1)[0]
    size = b1 & 0x7F
    if size == 126:
        size = int.from_bytes(sock.recv(2), "big")
    payload = b""
    while len(payload) < size:
        payload += sock.recv(size - len(payload))
    return b0 & 0x0F, payload


def test_the_server_pings_and_closes_a_client_that_never_pongs(edge_server: Start) -> None:
    """A client that does not answer the protocol's pings is dropped: a dead peer does not
    hold its socket (websockets clients answer pings by themselves; this one is raw)."""
    srv = edge_server(conn_ping_interval_s="0.5")
    driver = sign_up_driver(Api(srv.url))
    sock = _raw_handshake(srv, driver.token)
    opcodes = []
    try:
        while True:
            opcode, _payload = _read_frame(sock)
            opcodes.append(opcode)
            if opcode == 0x8:  # close
                break
    except (ConnectionError, TimeoutError, IndexError):
        pass  # the server may drop the TCP connection after its close frame
    finally:
        sock.close()
    assert 0x9 in opcodes, opcodes  # a ping came
    assert opcodes[-1] == 0x8, opcodes  # and, unanswered, the close


def test_offers_are_pushed_and_sent_again_on_reconnect(edge_server: Start) -> None:
    srv = edge_server(offer_timeout_s="60")
    api = Api(srv.url)
    driver, rider = sign_up_driver(api), sign_up_rider(api)
    online_here(api, driver, rider)
    ws = open_ws(srv, driver)
    trip = request_trip(api, rider)
    pushed = next_of(ws, "offer")["offer"]
    assert pushed["trip_id"] == trip["id"] and pushed["pickup"] == PICKUP
    ws.close()
    again = open_ws(srv, driver)  # a reconnect loses no pending offer
    assert next_of(again, "offer")["offer"]["id"] == pushed["id"]
    again.close()
    assert [o["id"] for o in long_poll(api, driver, wait=0)] == [pushed["id"]]


@pytest.mark.parametrize("channel", ["ws", "poll"])
def test_revoking_a_token_closes_its_connections_only(edge_server: Start, channel: str) -> None:
    srv = edge_server()
    api = Api(srv.url)
    driver = sign_up_driver(api)
    second = api.post("/v1/sessions", json_body={"email": _email(api, driver.token),
                                                 "password": "correct horse battery"})
    assert second.status in (200, 201), second.text
    other = type(driver)(driver.id, second.body["token"], "driver")
    kept = open_ws(srv, other)
    if channel == "ws":
        ws = open_ws(srv, driver)
        ws.send(json.dumps({"type": "ping"}))
        assert frame(ws) == {"type": "pong"}
        assert api.delete("/v1/sessions/current", driver.token).status == 204
        assert close_code(ws, timeout=2.0) == 4001
    else:
        import threading

        got: list[int] = []
        poll = threading.Thread(target=lambda: got.append(
            api.get("/v1/drivers/me/offers?wait=25", driver.token, timeout=30).status))
        poll.start()
        _wait_until_polling(srv, api)
        assert api.delete("/v1/sessions/current", driver.token).status == 204
        poll.join(2.0)
        assert got == [401]
    kept.send(json.dumps({"type": "ping"}))
    assert frame(kept) == {"type": "pong"}  # the same driver's other token still works
    kept.close()


def _email(api: Api, token: str) -> str:
    me = api.get("/v1/me", token)
    assert me.status == 200, me.text
    return str(me.body["email"])


@pytest.mark.parametrize("channel", ["ws", "poll"])
def test_a_token_that_expires_while_open_ends_its_connection(edge_server: Start,
                                                              channel: str) -> None:
    # Authentication is checked when a connection opens; the token's expiry (here its maximum
    # age) still ends it, as a revocation does.
    srv = edge_server(token_max_age_s="8")
    api = Api(srv.url)
    driver = sign_up_driver(api)
    issued = time.monotonic()
    if channel == "ws":
        ws = open_ws(srv, driver)
        ws.send(json.dumps({"type": "ping"}))
        assert frame(ws) == {"type": "pong"}
        assert close_code(ws, timeout=15.0) == 4001
    else:
        r = api.get("/v1/drivers/me/offers?wait=25", driver.token, timeout=30)
        assert r.status == 401, r.text
    assert time.monotonic() - issued < 15.0  # at its expiry (8 s), not at the wait's end (25 s)


def test_opening_connections_is_rate_limited_per_account(edge_server: Start) -> None:
    # Holding is cheap, opening is not (authentication, reads): a reconnect loop is refused
    # with the REST API's 429 problem, for the WebSocket and the long-poll alike, per account.
    srv = edge_server(rate_limit_connection_open="3/minute")
    api = Api(srv.url)
    driver, other = sign_up_driver(api), sign_up_driver(api)
    for _ in range(2):
        open_ws(srv, driver).close()
    assert api.get("/v1/drivers/me/offers?wait=0.1", driver.token).status == 200
    with pytest.raises(InvalidStatus) as refused:
        open_ws(srv, driver)
    assert refused.value.response.status_code == 429
    assert int(refused.value.response.headers["Retry-After"]) > 0
    polled = api.get("/v1/drivers/me/offers?wait=0.1", driver.token)
    assert polled.status == 429 and polled.body["title"] == "Too Many Requests", polled.text
    ws = open_ws(srv, other)  # another driver's budget is their own
    ws.send(json.dumps({"type": "ping"}))
    assert frame(ws) == {"type": "pong"}
    ws.close()


def _wait_until_polling(srv: Server, api: Api) -> None:
    """Until the edge holds the long-poll (its connections gauge), bounded."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if 'ridehail_edge_connections{kind="poll"} 1.0' in api.get("/metrics").text:
            return
    raise AssertionError("the long-poll was never held")
