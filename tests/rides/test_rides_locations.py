"""One location parser for every channel: `POST /v1/drivers/me/location`, a row of
`POST /v1/locations` and a WebSocket frame refuse the same locations, naming the same field
(the WebSocket used to take a `ts` in 2099 that REST refused)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import simple_websocket
from flask import Flask

from accounts.service import create_service
from ridehail.settings import Settings
from tests.bad_locations import BAD_LOCATIONS, HERE
from tests.conftest import Server, start_server
from tests.rides.conftest import Api, go_online, publish, sign_up_driver


def _position(app: Flask, driver_id: str) -> tuple[float, float, float]:
    publish(app)
    pos = app.extensions["dispatch"].index.snapshot().get(driver_id, now=0.0)
    assert pos is not None
    return (pos.lat, pos.lng, pos.ts)


def test_rest_refuses_each_bad_location_naming_the_field(app: Flask, api: Api) -> None:
    driver = sign_up_driver(api)
    go_online(api, driver, HERE["lat"], HERE["lng"])
    before = _position(app, driver.id)
    for payload, field in BAD_LOCATIONS:
        r = api.post("/v1/drivers/me/location", driver.token, payload)
        assert r.status == 422, (payload, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert [e["field"] for e in r.body["errors"]][:1] == [field], (payload, r.text)
    assert _position(app, driver.id) == before  # nothing refused was stored


def test_a_gateway_batch_refuses_each_bad_row_naming_its_path(app: Flask, api: Api) -> None:
    driver = sign_up_driver(api)
    go_online(api, driver, HERE["lat"], HERE["lng"])
    service = create_service(app.extensions["uow_factory"], "gateway")
    before = _position(app, driver.id)
    for payload, field in BAD_LOCATIONS:
        rows = [{"driver_id": driver.id, **HERE}, {"driver_id": driver.id, **payload}]
        r = api.post("/v1/locations", service, {"updates": rows})
        assert r.status == 422, (payload, r.text)
        assert [e["field"] for e in r.body["errors"]][:1] == [f"updates.1.{field}"], r.text
    assert _position(app, driver.id) == before  # a refused batch stores none of its rows


@pytest.fixture
def server(any_db_settings: Settings, tmp_path: Path) -> Iterator[Server]:
    srv = start_server({"RIDEHAIL_DATABASE_URL": any_db_settings.database_url,
                        "RIDEHAIL_VAR_DIR": str(tmp_path)})
    yield srv
    srv.stop()


def _exchange(ws: simple_websocket.Client, frame: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(frame))
    raw = ws.receive(timeout=10)
    assert raw is not None, f"no answer to {frame}"
    answer: dict[str, Any] = json.loads(raw)
    return answer


def test_the_websocket_refuses_the_same_locations_naming_the_field(server: Server) -> None:
    api = Api(server.url)
    driver = sign_up_driver(api)
    go_online(api, driver, HERE["lat"], HERE["lng"])
    url = server.url.replace("http://", "ws://") + f"/v1/drivers/me/ws?access_token={driver.token}"
    ws = simple_websocket.Client.connect(url)
    try:
        for payload, field in BAD_LOCATIONS:
            answer = _exchange(ws, {"type": "location", **payload})
            assert answer["type"] == "error" and answer["field"] == field, (payload, answer)
        # A frame nested too deep for a recursive parser is an error frame, not a crash (the
        # deepest that fits in a frame: a bigger one closes the socket, tests/edge).
        for depth in (40, 30_000):
            ws.send('{"type": "location", "lat": ' + "[" * depth + "]" * depth + "}")
            raw = ws.receive(timeout=10)
            assert raw is not None and json.loads(raw)["field"] == "frame", depth
        # The connection stays open, and a good location is taken.
        assert _exchange(ws, {"type": "location", **HERE}) == {"type": "ack"}
    finally:
        ws.close()
