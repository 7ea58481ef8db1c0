"""The driver's WebSocket: offers pushed down as they are made, locations sent up as frames.

Frames up: {"type": "location", "lat": .., "lng": .., "ts"?: ISO 8601} and {"type": "ping"}.
Frames down: {"type": "offer", "offer": {...}}, {"type": "ack"|"pong"}, {"type": "error",
"detail": ..., "field": ...}. A bad frame gets an error frame; the connection stays open.
"""

from __future__ import annotations

import json
import queue
from typing import Any

from flask import Flask, request
from flask_sock import Sock

from accounts.auth import current_principal, principal_from_request
from accounts.model import Role
from ridehail.kernel.errors import Problem
from ridehail.kernel.validation import loads

from .api import engine, offers_payload
from .locations import BadLocation, parse_location
from .model import DispatchError


def register_ws(app: Flask) -> Sock:
    sock = Sock(app)

    @app.before_request
    def _authenticate_ws() -> None:
        # flask-sock completes the handshake (101) before its view runs: a refusal raised in
        # the view would come after the upgrade. Refuse here, as a plain HTTP problem.
        if request.endpoint != "driver_ws":
            return
        principal = principal_from_request(allow_query_token=True)
        if principal.role != Role.driver:
            raise Problem(403, "Forbidden", "the driver channel is for drivers")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise Problem(426, "Upgrade Required", "this endpoint is a WebSocket",
                          headers={"Upgrade": "websocket", "Connection": "Upgrade"})

    @sock.route("/v1/drivers/me/ws")
    def driver_ws(ws: Any) -> None:
        me = current_principal().account_id
        eng = engine()
        sub = eng.channel.subscribe(me)
        try:
            for offer in offers_payload(me):
                ws.send(json.dumps({"type": "offer", "offer": offer}))
            while True:
                _push(ws, sub, me)
                raw = ws.receive(timeout=0.05)
                if raw is None:
                    continue
                ws.send(json.dumps(_handle(me, raw)))
        finally:
            eng.channel.unsubscribe(me, sub)

    return sock


def _push(ws: Any, sub: queue.SimpleQueue[dict[str, Any]], me: str) -> None:
    pushed = False
    while True:
        try:
            sub.get_nowait()
        except queue.Empty:
            break
        pushed = True
    if pushed:  # send the offers as stored (the message is only a wake-up)
        for offer in offers_payload(me):
            ws.send(json.dumps({"type": "offer", "offer": offer}))


def _handle(me: str, raw: str | bytes) -> dict[str, Any]:
    try:
        frame = loads(raw)
    except ValueError as exc:
        return {"type": "error", "detail": f"frame is not JSON: {exc}", "field": "frame"}
    if not isinstance(frame, dict):
        return {"type": "error", "detail": "frame must be an object", "field": "frame"}
    kind = frame.pop("type", None)
    if kind == "ping":
        return {"type": "pong"}
    if kind != "location":
        return {"type": "error", "detail": "type: expected 'location' or 'ping'",
                "field": "type"}
    eng = engine()
    try:
        # The same parser as POST /v1/drivers/me/location: a ts without a zone or in the
        # future is refused here too.
        loc = parse_location(frame, eng.clock.now())
    except BadLocation as exc:
        return {"type": "error", "detail": str(exc), "field": exc.field}
    try:
        eng.update_location(me, loc.lat, loc.lng, loc.ts)
    except DispatchError as exc:
        return {"type": "error", "detail": str(exc), "field": "status"}
    return {"type": "ack"}
