"""The connection edge across processes (issue 12, scaled mode): an offer made on process A
reaches the driver's WebSocket or long-poll held by process B, a trip changed on A reaches its
rider's event stream held by B, and a token revoked on A closes its socket on B.

Each of these crosses processes only through the Redis relay of the channels
(`dispatch.cluster.RedisChannels`): without it B is never woken. B never re-reads on its own
(a socket reads offers on connect and on a wake-up; a stream reads its trip on a wake-up), so
every wait here is bounded well below the fallbacks (the long-poll's own timeout, the offer's
20 s deadline, the socket's 60 s idle close)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .conftest import PICKUP, auth, nearby_has, sign_up_driver, sign_up_rider, wait_until

pytestmark = pytest.mark.slow

NEAR = (PICKUP[0] + 0.002, PICKUP[1])  # about 220 m north of the pickup
DROPOFF = (PICKUP[0] + 0.004, PICKUP[1])


def ws_url(base: str, token: str) -> str:
    return base.replace("http://", "ws://", 1) + f"/v1/drivers/me/ws?access_token={token}"


def frame_of(ws: ClientConnection, kind: str, timeout: float) -> dict[str, Any]:
    """The next frame of type `kind` (others skipped), within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {kind!r} frame within {timeout} s")
        try:
            frame = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            raise AssertionError(f"no {kind!r} frame within {timeout} s") from None
        if frame["type"] == kind:
            return frame


def go_online(url: str, token: str) -> None:
    r = requests.put(f"{url}/v1/drivers/me/status", json={"status": "online"},
                     headers=auth(token), timeout=10)
    assert r.status_code == 200, r.text


def a_rider(url: str) -> str:
    _rider_id, rtok = sign_up_rider(url)
    r = requests.post(f"{url}/v1/riders/me/payment-methods", json={"token": "tok_ok"},
                      headers=auth(rtok), timeout=10)
    assert r.status_code in (200, 201), r.text
    return rtok


def request_trip(url: str, rtok: str) -> str:
    r = requests.post(f"{url}/v1/trips", json={
        "pickup": {"lat": PICKUP[0], "lng": PICKUP[1]},
        "dropoff": {"lat": DROPOFF[0], "lng": DROPOFF[1]}}, headers=auth(rtok), timeout=10)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def sse_events(resp: requests.Response) -> Iterator[tuple[str, Any]]:
    """(event, data) of a Server-Sent Events response; comments and ids skipped."""
    name, data = "message", ""
    for raw in resp.iter_lines(decode_unicode=True):
        line = raw or ""
        if not line:
            if data:
                yield name, json.loads(data)
            name, data = "message", ""
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def next_event(events: Iterator[tuple[str, Any]], wanted: str, timeout: float
               ) -> tuple[str, Any]:
    """The next event other than `location` (the driver's position comes and goes as it
    will), within `timeout` seconds; `wanted` names it in the failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            name, data = next(events)
        except (StopIteration, requests.ConnectionError) as exc:
            raise AssertionError(f"no {wanted}: the stream ended or fell silent ({exc!r})"
                                 ) from None
        if name != "location":
            return name, data
    raise AssertionError(f"no {wanted} within {timeout} s")


@pytest.mark.parametrize("held_by", ["websocket", "long_poll"])
def test_an_offer_made_on_a_reaches_the_driver_connected_to_b(make_cluster: Any,
                                                               held_by: str) -> None:
    cluster = make_cluster()
    a, b = (p.url for p in cluster.start_apis(2))
    driver_id, dtok = sign_up_driver(a)
    rtok = a_rider(a)
    go_online(a, dtok)

    with connect(ws_url(b, dtok), open_timeout=10) as ws:
        # The location goes up B's socket; its ack says the engine applied it.
        ws.send(json.dumps({"type": "location", "lat": NEAR[0], "lng": NEAR[1], "id": "loc-1"}))
        assert frame_of(ws, "ack", 10) == {"type": "ack", "id": "loc-1"}
        # A matches on what it sees: wait until the location reached A (the feed).
        wait_until(lambda: nearby_has(driver_id, a, rtok, *PICKUP), 10, "the driver on A")

        if held_by == "websocket":
            trip_id = request_trip(a, rtok)
            # The socket was open before the offer existed: only a wake-up relayed from A
            # can bring it here (B reads offers on connect and on wake-ups, nothing else).
            offer = frame_of(ws, "offer", 10)["offer"]
            assert offer["trip_id"] == trip_id, offer
            return

    # The long-poll on B, parked before the trip exists; it would return by itself only
    # after its 20 s wait, so an answer within 10 s of the request is B being woken.
    got: dict[str, Any] = {}
    poller = threading.Thread(target=lambda: got.update(r=requests.get(
        f"{b}/v1/drivers/me/offers", params={"wait": 20}, headers=auth(dtok), timeout=60)))
    poller.start()
    time.sleep(0.5)  # let it park (a late poll reads the offer at once: still correct)
    trip_id = request_trip(a, rtok)
    poller.join(10)
    assert not poller.is_alive(), "the long-poll on B was not woken by the offer made on A"
    assert got["r"].status_code == 200, got["r"].text
    assert [o["trip_id"] for o in got["r"].json()] == [trip_id], got["r"].json()


def test_the_riders_stream_on_b_follows_the_trip_changed_on_a(make_cluster: Any) -> None:
    cluster = make_cluster()
    a, b = (p.url for p in cluster.start_apis(2))
    driver_id, dtok = sign_up_driver(a)
    rtok = a_rider(a)
    go_online(a, dtok)
    r = requests.post(f"{a}/v1/drivers/me/location", json={"lat": NEAR[0], "lng": NEAR[1]},
                      headers=auth(dtok), timeout=10)
    assert r.status_code == 204, r.text
    wait_until(lambda: nearby_has(driver_id, a, rtok, *PICKUP), 10, "the driver on A")
    trip_id = request_trip(a, rtok)

    with requests.get(f"{b}/v1/trips/{trip_id}/events", headers=auth(rtok), stream=True,
                      timeout=(10, 10)) as stream:
        assert stream.status_code == 200, stream.text
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = sse_events(stream)
        name, first = next_event(events, "the trip on connect", 10)
        assert name == "trip" and first["id"] == trip_id and first["state"] == "requested"

        # The offer is A's (read on A, no relay involved); every step from here is done on
        # A and must show on B's stream, in order, before the next step is taken.
        r = requests.get(f"{a}/v1/drivers/me/offers", params={"wait": 10},
                         headers=auth(dtok), timeout=30)
        assert r.status_code == 200 and len(r.json()) == 1, r.text
        steps = [(f"/v1/offers/{r.json()[0]['id']}/accept", "driver_assigned"),
                 (f"/v1/trips/{trip_id}/arrive", "driver_arrived"),
                 (f"/v1/trips/{trip_id}/start", "in_progress"),
                 (f"/v1/trips/{trip_id}/complete", "completed")]
        for path, state in steps:
            r = requests.post(f"{a}{path}", headers=auth(dtok), timeout=10)
            assert r.status_code == 200 and r.json()["state"] == state, r.text
            name, data = next_event(events, f"the trip {state}", 10)
            assert name == "trip", f"{name} {data} instead of the trip {state}"
            assert (data["id"], data["state"]) == (trip_id, state), data
            if state == "driver_assigned":
                assert data["driver_id"] == driver_id
        # After the end, the stream says why and closes.
        assert next_event(events, "the close event", 10) == ("close", {"reason": "trip_ended"})
        assert next(events, None) is None, "the stream went on after its close event"


def closed_with(ws: ClientConnection, within: float) -> int:
    """The close code `ws` gets within `within` seconds (a frame before it is a failure)."""
    try:
        frame = ws.recv(timeout=max(0.0, within))
    except TimeoutError:
        raise AssertionError(f"the socket is still open after {within:.2f} s") from None
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, exc
        return exc.rcvd.code
    raise AssertionError(f"a frame instead of the close: {frame!r}")


@pytest.mark.parametrize("reconnect", [False, True])
def test_a_token_revoked_on_a_closes_its_socket_on_b_within_2_s(make_cluster: Any,
                                                                reconnect: bool) -> None:
    # B would keep the token cached for 30 s, but the revocation on A empties B's cache too.
    cluster = make_cluster(RIDEHAIL_AUTH_CACHE_S="30")
    a, b = (p.url for p in cluster.start_apis(2))
    _driver_id, dtok = sign_up_driver(a)

    with connect(ws_url(b, dtok), open_timeout=10) as ws:
        # A pong proves B's socket loop runs, so it is subscribed to revocations.
        ws.send(json.dumps({"type": "ping", "id": 1}))
        assert frame_of(ws, "pong", 10) == {"type": "pong", "id": 1}
        began = time.monotonic()
        r = requests.delete(f"{a}/v1/sessions/current", headers=auth(dtok), timeout=10)
        assert r.status_code == 204, r.text
        # The issue's bound (a correctness requirement, not a benchmark): closed with 4001
        # within 2 s of the revocation.
        assert closed_with(ws, began + 2.0 - time.monotonic()) == 4001
        elapsed = time.monotonic() - began
    assert elapsed < 2.0, elapsed
    if not reconnect:
        return
    # The revoked token on B again: refused, or closed at once like the first socket.
    try:
        with connect(ws_url(b, dtok), open_timeout=10) as again:
            assert closed_with(again, 2.0) == 4001
    except InvalidStatus as exc:
        assert exc.response.status_code == 401, exc
