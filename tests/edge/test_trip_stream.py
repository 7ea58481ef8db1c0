"""A trip's event stream through a whole ride, for its rider and for its driver; who may open
it; and a restart that closes every connection with 1001 and loses nothing once the clients
reconnect."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests
import websockets
from websockets.sync.client import ClientConnection

from tests.conftest import Server
from tests.edge.conftest import Events, close_code, next_of, online_here, open_ws, ws_url
from tests.rides.conftest import (
    DROPOFF,
    PICKUP,
    Account,
    Api,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)

Start = Callable[..., Server]


def requested_ride(srv: Server) -> tuple[Api, Account, Account, dict[str, Any]]:
    """A driver online at the pickup and a rider's trip there: (api, driver, rider, trip)."""
    api = Api(srv.url)
    driver, rider = sign_up_driver(api), sign_up_rider(api)
    online_here(api, driver, rider)
    return api, driver, rider, request_trip(api, rider)


def offered_ride(srv: Server) -> tuple[Api, Account, Account, ClientConnection,
                                       dict[str, Any], dict[str, Any]]:
    """A driver online at the pickup with their socket open, a rider's trip, and its offer
    as the socket pushed it: (api, driver, rider, socket, trip, offer)."""
    api = Api(srv.url)
    driver, rider = sign_up_driver(api), sign_up_rider(api)
    online_here(api, driver, rider)
    ws = open_ws(srv, driver)
    trip = request_trip(api, rider)
    return api, driver, rider, ws, trip, next_of(ws, "offer")["offer"]


def test_the_rider_follows_a_whole_ride_on_the_stream(edge_server: Start) -> None:
    srv = edge_server(stream_location_interval_s="0.2")
    api, driver, rider, ws, trip, offer = offered_ride(srv)
    events = Events(srv, trip["id"], rider.token)
    first = events.until("trip")
    assert first["id"] == trip["id"] and first["state"] == "requested"
    assert api.post(f"/v1/offers/{offer['id']}/accept", driver.token).status == 200
    assigned = events.until("trip", lambda t: t["state"] == "driver_assigned")
    assert assigned == api.get(f"/v1/trips/{trip['id']}", rider.token).body | {
        "driver_location": assigned.get("driver_location")}
    moved = {"lat": PICKUP["lat"] + 0.001, "lng": PICKUP["lng"]}
    ws.send(json.dumps({"type": "location", **moved}))
    position = events.until("location", lambda p: p["lat"] == moved["lat"])
    assert position["lng"] == moved["lng"]
    assert datetime.fromisoformat(position["ts"]).tzinfo is not None
    for step, state in (("arrive", "driver_arrived"), ("start", "in_progress")):
        assert api.post(f"/v1/trips/{trip['id']}/{step}", driver.token).status == 200
        assert events.until("trip")["state"] == state
    ws.send(json.dumps({"type": "location", **DROPOFF}))
    assert api.post(f"/v1/trips/{trip['id']}/complete", driver.token).status == 200
    done = events.until("trip", lambda t: t["state"] == "completed")
    assert done["fare"] is not None and done["completed_at"] is not None
    assert events.until("close") == {"reason": "trip_ended"}
    events.close()
    ws.close()


def test_only_the_trips_parties_may_open_its_stream(edge_server: Start) -> None:
    srv = edge_server()
    api, driver, _rider, trip = requested_ride(srv)
    stranger, other_driver = sign_up_rider(api), sign_up_driver(api)
    url = f"{srv.url}/v1/trips/{trip['id']}/events"
    for token, status in ((stranger.token, 404), (other_driver.token, 404), (None, 401),
                          ("not-a-token", 401)):
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        r = requests.get(url, headers=headers, timeout=10)
        assert r.status_code == status, (token, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    # The driver it is offered to sees it, as GET /v1/trips/{id} lets them.
    offered = Events(srv, trip["id"], driver.token)
    assert offered.until("trip") == api.get(f"/v1/trips/{trip['id']}", driver.token).body
    offered.close()


def test_the_driver_follows_the_trip_and_sees_the_riders_cancel(edge_server: Start) -> None:
    srv = edge_server(stream_location_interval_s="0.2")
    api, driver, rider, ws, trip, offer = offered_ride(srv)
    assert api.post(f"/v1/offers/{offer['id']}/accept", driver.token).status == 200
    events = Events(srv, trip["id"], driver.token)
    assigned = events.until("trip")
    assert assigned["state"] == "driver_assigned"
    assert assigned == api.get(f"/v1/trips/{trip['id']}", driver.token).body
    ws.send(json.dumps({"type": "location", "lat": PICKUP["lat"] + 0.001, "lng": PICKUP["lng"]}))
    assert next_of(ws, "ack")
    assert api.post(f"/v1/trips/{trip['id']}/cancel", rider.token).status == 200
    names: list[str] = []
    while not names or names[-1] != "close":
        name, data = events.next()
        names.append(name)
        if name == "trip":
            assert data["state"] == "cancelled"
    assert "location" not in names  # the driver's own position is never sent back to them
    assert data == {"reason": "trip_ended"}
    events.close()
    ws.close()


def test_revoking_the_riders_tokens_ends_the_stream(edge_server: Start) -> None:
    srv = edge_server()
    api, _driver, rider, trip = requested_ride(srv)
    events = Events(srv, trip["id"], rider.token)
    events.until("trip")
    assert api.delete("/v1/sessions", rider.token).status == 204
    assert events.until("close") == {"reason": "revoked"}
    events.close()


def test_shutdown_closes_with_1001_and_a_reconnect_catches_up(edge_server: Start) -> None:
    srv = edge_server(offer_timeout_s="120")
    api, driver, rider, ws, trip, offer = offered_ride(srv)
    events = Events(srv, trip["id"], rider.token)
    events.until("trip")
    srv.proc.send_signal(signal.SIGTERM)
    assert close_code(ws) == 1001
    assert events.until("close") == {"reason": "shutdown"}
    events.close()
    srv.proc.wait(30)
    again = edge_server(offer_timeout_s="120")  # the same database
    api = Api(again.url)
    ws = open_ws(again, driver)
    assert next_of(ws, "offer")["offer"]["id"] == offer["id"]  # sent again on connect
    events = Events(again, trip["id"], rider.token)
    assert events.until("trip")["state"] == "requested"  # the current state, first
    assert api.post(f"/v1/offers/{offer['id']}/accept", driver.token).status == 200
    assert events.until("trip", lambda t: t["state"] == "driver_assigned")
    events.close()
    ws.close()


def test_500_connections_are_held_and_health_stays_prompt(edge_server: Start) -> None:
    """500 WebSockets on one process (the threaded server held 32): each is served, and
    /health answers meanwhile (the old server starved it: more than 15 s)."""
    srv = edge_server(conn_max_per_account="500")
    driver = sign_up_driver(Api(srv.url))

    async def hold() -> tuple[int, int]:
        url = ws_url(srv, driver.token)
        socks = []
        for _ in range(500):
            socks.append(await websockets.connect(url, open_timeout=30))
        # Answered at all: the threaded server could not, with its threads all held.
        health = await asyncio.to_thread(requests.get, srv.url + "/health", timeout=5)
        answered = 0
        for i, sock in enumerate(socks):
            await sock.send(json.dumps({"type": "ping", "id": i}))
        for i, sock in enumerate(socks):
            if json.loads(await sock.recv()) == {"type": "pong", "id": i}:
                answered += 1
        await asyncio.gather(*(s.close() for s in socks))
        assert health.status_code == 200
        return answered, len(socks)

    answered, opened = asyncio.run(hold())
    assert answered == opened == 500
