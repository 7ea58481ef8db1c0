"""The connection edge: one ASGI app in front of the Flask app, on one event loop.

The connections that wait (the driver's WebSocket, the offers long-poll, the rider's trip
event stream) are served here, on the event loop: an open connection costs memory, not a
thread. Everything else goes to the Flask app in a thread pool, one hop each way (`wsgi.py`).

A driver's location ping, the API's most frequent request by far (a city of 100,000 drivers
posting every 4 s makes 25,000 a second), goes to the Flask app through a lane of its own: one
thread, which takes the pings queued behind it without sleeping. Handed to the main pool, each
ping woke a thread of its own, and the threads then passed the GIL and the index's locks among
themselves: bench/api.py's 32 drivers posting back to back cost 0.39-0.56 ms of server CPU a
ping at 4.7 context switches, against 0.30-0.39 ms at 0.65 through the lane (1,712-2,465
pings/s against 2,330-3,040 in probe runs on one afternoon), and the index's publisher waited
12 ms (p50) for the lock the request threads kept taking. The lane is also a bulkhead: pings
are answered while slow requests (a sign-up's password hash, a database that stalls) hold every
thread of the main pool, and a flood of pings cannot take those threads.

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
LOCATION_PING = "/v1/drivers/me/location"


def location_threads(scaled: bool) -> int:
    """The location lane's threads: one in the embedded mode, where a ping never waits (the
    index is in memory); two in the scaled mode, so one computes while the other waits on
    Redis (the order check and the stream). bench/api.py's pings, embedded: 3,100-3,240/s with
    one thread, 2,410-2,680/s with two; scaled: 810-905/s with two and 760/s with one in two
    runs each, about 600/s either way in two later runs each on a slower machine."""
    return 2 if scaled else 1


class EdgeApp:
    """The ASGI app: the edge's routes on the loop, the rest to Flask."""

    def __init__(self, app: Flask) -> None:
        self.edge = Edge(app)
        settings = self.edge.settings
        self.wsgi = FlaskBridge(app, workers=settings.threads, max_body=settings.max_body_bytes)
        self.pings = FlaskBridge(app, workers=location_threads(settings.scaled),
                                 max_body=settings.max_body_bytes, name="location")

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
        if kind == "http" and path == LOCATION_PING:
            await self.pings(scope, receive, send)
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
                self.pings.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _needs_upgrade() -> None:
    raise Problem(426, "Upgrade Required", "this endpoint is a WebSocket",
                  headers={"Upgrade": "websocket", "Connection": "Upgrade"})
