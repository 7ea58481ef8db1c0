"""The connection edge: one ASGI app in front of the Flask app, on one event loop.

The connections that wait (the driver's WebSocket, the offers long-poll, the rider's trip
event stream) are served here, on the event loop: an open connection costs memory, not a
thread. Everything else goes to the Flask app in a thread pool, one hop each way (`wsgi.py`).

The edge reaches the engine through the channels it already has: the offers channel (keyed by
driver) and the trips channel (keyed by trip) wake connections after a commit, in-process in
the embedded mode and relayed through a Redis stream in the scaled mode; what a connection
sends is then read again (pending offers, the trip) as the REST views read it. Blocking work
(reading the database, authenticating, applying a batch of locations) runs in the edge's own
thread pool, never on the loop.
"""

from __future__ import annotations

import re

from flask import Flask

from ridehail.kernel.errors import Problem

from .core import Edge
from .driver_channel import driver_socket, long_poll
from .flaskside import Refusal, in_request_refusal
from .http import Receive, Scope, Send, deny, refuse
from .trip_stream import trip_events
from .wsgi import FlaskBridge

TRIP_EVENTS = re.compile(r"/v1/trips/([^/]+)/events")


class EdgeApp:
    """The ASGI app: the edge's routes on the loop, the rest to Flask."""

    def __init__(self, app: Flask) -> None:
        self.edge = Edge(app)
        settings = self.edge.settings
        self.wsgi = FlaskBridge(app, workers=settings.threads, max_body=settings.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        edge = self.edge
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope["path"]
        if kind == "websocket":
            if path == "/v1/drivers/me/ws":
                await driver_socket(edge, scope, receive, send)
            else:
                await deny(scope, send, Refusal(404, [], b""))
            return
        if kind == "http" and path == "/v1/drivers/me/ws":
            # A plain GET: the same 426 the WebSocket route always gave.
            refusal = await edge.run(in_request_refusal, edge.flask, scope, _needs_upgrade)
            await refuse(send, refusal)
            return
        if kind == "http" and scope["method"] == "GET":
            if path == "/v1/drivers/me/offers" and b"wait=" in scope.get("query_string", b""):
                await long_poll(edge, scope, receive, send)
                return
            match = TRIP_EVENTS.fullmatch(path)
            if match is not None:
                await trip_events(edge, scope, receive, send, match.group(1))
                return
        await self.wsgi(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.edge.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.edge.stop()
                self.wsgi.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _needs_upgrade() -> None:
    raise Problem(426, "Upgrade Required", "this endpoint is a WebSocket",
                  headers={"Upgrade": "websocket", "Connection": "Upgrade"})
