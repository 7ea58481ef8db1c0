"""A trip's event stream on the edge: `GET /v1/trips/{id}/events`, Server-Sent Events, for
the trip's rider and its driver (or a driver it is offered to), as `GET /v1/trips/{id}` lets
them see it: anyone else gets the 404 that view gives them.

    event: trip       the trip as GET /v1/trips/{id} shows it to the caller: on connect (so a
                      reconnect catches up), then after every change (a rider's cancel
                      reaches the driver's app here)
    event: location   {"lat", "lng", "ts"}: the driver's position, at most every
                      `stream_location_interval_s`, while trips.access lets the rider see it
                      (never to the driver)
    event: close      {"reason": ...}: the stream ends (the trip ended, the token was
                      revoked, a newer stream replaced this one, the server is going away)
    : ping            a comment every `stream_heartbeat_s`

A change wakes the stream through the trips channel (any process, in the scaled mode); the
trip is then read again, as the REST view reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from accounts.model import Role
from dispatch.engine import Engine
from dispatch.readers import trip_payload
from ridehail.kernel.errors import Problem
from ridehail.kernel.formats import iso
from trips.access import sees_driver_location
from trips.model import TERMINAL, Trip, TripNotFound

from .connections import ENDED, REASON_NAMES, Conn
from .core import Edge
from .flaskside import Caller, authenticate
from .http import Receive, Scope, Send, dumps

PARTIES = frozenset({Role.rider, Role.driver})


def party_view(eng: Engine, trip_id: str, role: str, account_id: str
               ) -> tuple[Trip, dict[str, Any]]:
    """The trip and the caller's view of it, as GET /v1/trips/{id} shows it (the thread pool;
    TripNotFound when the caller may not see it)."""
    trip = eng.trip_for(trip_id, role, account_id)
    return trip, trip_payload(eng, trip, role, account_id)


class TripStream:
    __slots__ = ("conn", "edge", "trip_id", "me", "role", "wake", "seq", "last_view",
                 "last_pos", "trip")

    def __init__(self, edge: Edge, conn: Conn, trip_id: str, trip: Trip, role: str) -> None:
        self.edge = edge
        self.conn = conn
        self.trip_id = trip_id
        self.me = conn.account_id
        self.role = role
        self.wake = asyncio.Event()
        self.seq = 0
        self.last_view: dict[str, Any] | None = None
        self.last_pos: tuple[float, float, float] | None = None
        self.trip = trip

    def encode(self, name: str, data: Any, *, more: bool = True) -> dict[str, Any]:
        """The next event, numbered, as the ASGI message that writes it."""
        self.seq += 1
        text = f"id: {self.seq}\nevent: {name}\ndata: {dumps(data)}\n\n"
        return {"type": "http.response.body", "body": text.encode(), "more_body": more}

    def event(self, name: str, data: Any) -> None:
        self.conn.post(self.encode(name, data))

    async def send_trip(self) -> None:
        trip, view = await self.edge.run(party_view, self.edge.engine, self.trip_id,
                                         self.role, self.me)
        self.trip = trip
        if view != self.last_view:
            self.last_view = view
            self.event("trip", view)

    def send_position(self) -> None:
        trip = self.trip
        if trip.driver_id is None or not sees_driver_location(trip, self.role, self.me):
            return
        pos = self.edge.engine.index.snapshot().get(trip.driver_id)
        if pos is None:
            return
        key = (pos.lat, pos.lng, pos.ts)
        if key != self.last_pos:
            self.last_pos = key
            self.event("location", {"lat": pos.lat, "lng": pos.lng, "ts": iso(pos.ts)})


async def trip_events(edge: Edge, scope: Scope, receive: Receive, send: Send,
                      trip_id: str) -> None:
    eng = edge.engine

    def check() -> tuple[Caller, Trip, dict[str, Any]]:
        caller = authenticate(PARTIES, "a trip's event stream")
        try:
            return (caller, *party_view(eng, trip_id, caller.principal.role.value,
                                        caller.principal.account_id))
        except TripNotFound:
            raise Problem(404, "Not Found", f"no such trip {trip_id}") from None

    admitted = await edge.admit(scope, send, check)
    if admitted is None:
        return
    caller, trip, view = admitted

    def close(code: int) -> None:
        reason = REASON_NAMES.get(code, "closed")
        # The trip's end follows its last state (completed, with the fare): that is kept.
        conn.post_last(stream.encode("close", {"reason": reason}, more=False),
                       keep_queued=code == ENDED)
        stream.wake.set()

    conn = Conn.of("sse", caller, send, close)
    stream = TripStream(edge, conn, trip_id, trip, caller.principal.role.value)
    loop = asyncio.get_running_loop()

    def on_change(_message: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(stream.wake.set)

    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"x-accel-buffering", b"no"),
    ]})
    watcher = loop.create_task(_watch_disconnect(receive, conn, stream))
    settings = edge.settings
    try:
        with edge.holding(conn, eng.trip_channel, trip_id, on_change):
            stream.last_view = view
            stream.event("trip", view)
            next_pos = next_beat = time.monotonic()
            while conn.closing is None and not conn.closed:
                if stream.trip.state in TERMINAL:
                    conn.close(ENDED)
                    break
                now = time.monotonic()
                if now >= next_pos:
                    stream.send_position()
                    next_pos = now + settings.stream_location_interval_s
                if now >= next_beat:
                    conn.post({"type": "http.response.body", "body": b": ping\n\n",
                               "more_body": True})
                    next_beat = now + settings.stream_heartbeat_s
                timeout = max(0.0, min(next_pos, next_beat) - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stream.wake.wait(), timeout)
                if stream.wake.is_set():
                    stream.wake.clear()
                    if conn.closing is None and not conn.closed:
                        try:
                            await stream.send_trip()
                        except TripNotFound:
                            conn.close(ENDED)
            await conn.drained()  # the last event goes out before the stream ends
    finally:
        watcher.cancel()


async def _watch_disconnect(receive: Receive, conn: Conn, stream: TripStream) -> None:
    """The client hung up: end the stream now, not at its next write."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            conn.closed = True
            stream.wake.set()
            return
