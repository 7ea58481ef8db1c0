"""The ride flow against a real `ridehail serve` process (uvicorn and the edge, the timer and
publisher threads): offers by WebSocket and by long-poll, reject, timeout, accept to complete."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import simple_websocket

from ridehail.settings import Settings
from tests.conftest import Server, start_server, throwaway_pg_schema
from tests.nearby_ids import opaque_ids
from tests.rides.conftest import (
    PICKUP,
    Account,
    Api,
    await_trip,
    go_online,
    long_poll,
    request_trip,
    sign_up_driver,
    sign_up_rider,
)


@pytest.fixture
def server(any_db_settings: Settings, tmp_path: Path) -> Iterator[Server]:
    # A schema of its own on PostgreSQL: the server sweeps expired offers of the whole
    # database, and another test's leftover trip would be re-offered to this test's drivers.
    fresh = None
    url = any_db_settings.database_url
    if url.startswith("postgresql"):
        fresh = throwaway_pg_schema("rh_server")
        url = next(fresh)
    srv = start_server({
        "RIDEHAIL_DATABASE_URL": url,
        "RIDEHAIL_VAR_DIR": str(tmp_path),
        "RIDEHAIL_OFFER_TIMEOUT_S": "3.0",  # margin for a loaded machine
        "RIDEHAIL_THREADS": "16",
    })
    yield srv
    srv.stop()
    if fresh is not None:
        next(fresh, None)  # drops the schema


def ws_url(server: Server, token: str | None = None) -> str:
    url = server.url.replace("http://", "ws://") + "/v1/drivers/me/ws"
    return url if token is None else f"{url}?access_token={token}"


def receive_json(ws: simple_websocket.Client, timeout: float = 10.0) -> dict[str, Any]:
    raw = ws.receive(timeout=timeout)
    assert raw is not None, "no frame within the timeout"
    frame: dict[str, Any] = json.loads(raw)
    return frame


def await_nearby(api: Api, rider: Account, ids: set[str], timeout: float = 10.0) -> None:
    """Locations show after the publisher's next tick: wait for it (bounded)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        r = api.get(f"/v1/vehicles/nearby?lat={PICKUP['lat']}&lng={PICKUP['lng']}", rider.token)
        assert r.status == 200, r.text
        seen = {f["id"] for f in r.body["features"]}
        # Nearby's ids are opaque per rider (issue 13, item 10): map ours to them.
        if all(opaque_ids(rider.id, d) & seen for d in ids):
            return
        time.sleep(0.02)
    raise AssertionError(f"nearby shows {seen}, expected {ids}")


def test_ride_over_a_real_server_with_websocket_long_poll_reject_and_timeout(
    server: Server,
) -> None:
    api = Api(server.url)
    rider = sign_up_rider(api)
    pushed, polled, last = sign_up_driver(api), sign_up_driver(api), sign_up_driver(api)

    # The nearest driver is on the WebSocket (token in the query string, as browsers must).
    assert api.put("/v1/drivers/me/status", pushed.token, {"status": "online"}).status == 200
    ws = simple_websocket.Client.connect(ws_url(server, pushed.token))
    try:
        ws.send(json.dumps({"type": "ping"}))
        assert receive_json(ws) == {"type": "pong"}
        ws.send(json.dumps({"type": "location", "lat": PICKUP["lat"] + 0.0005,
                            "lng": PICKUP["lng"]}))
        assert receive_json(ws) == {"type": "ack"}
        ws.send(json.dumps({"type": "location", "lat": 91, "lng": 0}))
        bad = receive_json(ws)
        assert bad["type"] == "error" and bad["field"] == "lat"
        ws.send("not json")
        assert receive_json(ws)["type"] == "error"  # and the connection stays open

        go_online(api, polled, PICKUP["lat"] + 0.0020, PICKUP["lng"])
        go_online(api, last, PICKUP["lat"] + 0.0040, PICKUP["lng"])
        await_nearby(api, rider, {pushed.id, polled.id, last.id})

        trip = request_trip(api, rider)
        frame = receive_json(ws)
        assert frame["type"] == "offer" and frame["offer"]["trip_id"] == trip["id"]
        offer = frame["offer"]
        assert offer["state"] == "pending" and offer["pickup"] == PICKUP
        r = api.post(f"/v1/offers/{offer['id']}/reject", pushed.token)
        assert r.status == 200 and r.body["state"] == "rejected"
    finally:
        ws.close()

    # Rejected: the next driver's long-poll returns the offer.
    [second] = long_poll(api, polled, wait=10)
    assert second["trip_id"] == trip["id"]
    # Not answered within the 3 s deadline: the timer moves it on to the last driver.
    [third] = long_poll(api, last, wait=10)
    assert third["trip_id"] == trip["id"] and third["id"] != second["id"]
    assert api.post(f"/v1/offers/{second['id']}/accept", polled.token).status == 409

    accepted = api.post(f"/v1/offers/{third['id']}/accept", last.token)
    assert accepted.status == 200 and accepted.body["driver_id"] == last.id
    for step, state in (("arrive", "driver_arrived"), ("start", "in_progress"),
                        ("complete", "completed")):
        r = api.post(f"/v1/trips/{trip['id']}/{step}", last.token)
        assert r.status == 200 and r.body["state"] == state, r.text
    final = await_trip(api, rider, trip["id"], lambda t: t["state"] == "completed")
    assert final["fare"]["amount"] > 0 and final["driver_id"] == last.id


def test_websocket_refuses_without_a_driver_token_before_upgrading(server: Server) -> None:
    api = Api(server.url)
    rider = sign_up_rider(api)
    for url in (ws_url(server), ws_url(server, "not-a-token"), ws_url(server, rider.token)):
        with pytest.raises(simple_websocket.ConnectionError) as info:
            simple_websocket.Client.connect(url)
        assert info.value.status_code in (401, 403), url
    # A plain GET (no upgrade) by a driver is a 4xx, not a 500.
    driver = sign_up_driver(api)
    r = api.get("/v1/drivers/me/ws", driver.token)
    assert 400 <= r.status < 500, r.text


def test_websocket_with_the_authorization_header_and_an_offline_driver(server: Server) -> None:
    api = Api(server.url)
    driver = sign_up_driver(api)
    ws = simple_websocket.Client.connect(ws_url(server),
                                         headers={"Authorization": f"Bearer {driver.token}"})
    try:
        ws.send(json.dumps({"type": "location", **PICKUP}))
        err = receive_json(ws)
        assert err["type"] == "error" and "offline" in err["detail"]
        ws.send(json.dumps({"type": "teleport"}))
        assert receive_json(ws)["field"] == "type"
    finally:
        ws.close()
