"""The driver's channel on the edge: the WebSocket (`/v1/drivers/me/ws`) and the offers
long-poll (`GET /v1/drivers/me/offers?wait=`). The frames' meaning is in
`dispatch/driver_frames.py`; this module does the I/O.

Offers: a wake-up on the offers channel (from this process or, in the scaled mode, any) makes
the connection read the driver's pending offers and send the ones it has not sent yet. On
connect every pending offer is sent, so a driver who reconnects (to any process) loses none.

Locations: frames from every socket are gathered while the previous batch is applied and go
to the engine together (`Engine.update_locations`, the path of a fleet gateway's batch), in
the edge's thread pool; each frame then gets its ack, or an error frame naming the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from accounts.auth import unauthorized
from accounts.model import Role
from dispatch.driver_frames import FrameError, error_frame, offer_frame, parse_frame, reply
from dispatch.readers import offers_payload
from dispatch.schemas import OffersQuery
from ridehail.kernel.logging import get_logger
from ridehail.kernel.validation import parse_query

from .connections import REASONS, REVOKED, Conn
from .core import Edge
from .flaskside import Caller, Refusal, authenticate, in_request_refusal, overloaded
from .http import Receive, Scope, Send, deny, dumps, refuse, respond

log = get_logger(__name__)

DRIVERS = frozenset({Role.driver})


class DriverSocket:
    """One driver's WebSocket: its connection, its offers already sent, its frame budget."""

    __slots__ = ("conn", "edge", "me", "sent", "tokens", "stamp", "refreshing", "again",
                 "wake")

    def __init__(self, edge: Edge, conn: Conn) -> None:
        self.edge = edge
        self.conn = conn
        self.me = conn.account_id
        self.sent: set[str] = set()
        self.tokens = 2 * edge.settings.conn_frames_per_s  # the burst
        self.stamp = time.monotonic()
        self.refreshing = False
        self.again = False
        loop = asyncio.get_running_loop()
        # The offers channel's callback runs on the publisher's thread: hop onto the loop.
        def wake(_message: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self.refresh)

        self.wake = wake

    def send(self, frame: dict[str, Any]) -> None:
        self.send_text(dumps(frame))

    def send_text(self, text: str) -> None:
        self.conn.post({"type": "websocket.send", "text": text})

    def refresh(self) -> None:
        """Send the pending offers not sent yet (one read at a time; a wake-up during a read
        makes one more)."""
        if self.refreshing:
            self.again = True
            return
        self.refreshing = True
        asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            while True:
                self.again = False
                offers = await self.edge.run(offers_payload, self.edge.engine, self.me)
                for offer in offers:
                    if offer["id"] not in self.sent:
                        self.send(offer_frame(offer))
                self.sent = {offer["id"] for offer in offers}
                if not self.again or self.conn.closing is not None:
                    return
        except Exception:  # noqa: BLE001 - a failed read: the next wake-up reads again
            log.exception("pending offers not read", driver_id=self.me)
        finally:
            self.refreshing = False

    def allow(self) -> bool:
        """The frame budget: `conn_frames_per_s`, with a burst of twice as many."""
        rate = self.edge.settings.conn_frames_per_s
        now = time.monotonic()
        self.tokens = min(2 * rate, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def handle(self, raw: str | bytes) -> None:
        self.conn.last_rx = time.monotonic()
        if not self.allow():
            self.send(reply("error", None, field="frame",
                            detail=f"more than {self.edge.settings.conn_frames_per_s:g} frames "
                                   "a second; this frame was dropped"))
            return
        try:
            frame = parse_frame(raw, self.edge.engine.clock.now())
        except FrameError as exc:
            self.send(error_frame(exc))
            return
        if frame.kind == "ping":
            self.send(reply("pong", frame.tag))
            return
        self.edge.locations.add(self, frame)


async def driver_socket(edge: Edge, scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":  # the client left before its handshake
        await send({"type": "websocket.close", "code": 1000})
        return
    if edge.registry.full():
        await deny(scope, send, await edge.run(overloaded, edge.flask, scope))
        return
    try:
        caller: Caller = await edge.in_request(
            scope, lambda: authenticate(DRIVERS, "the driver channel"))
    except Refusal as refusal:
        await deny(scope, send, refusal)
        return
    await send({"type": "websocket.accept"})

    def close(code: int) -> None:
        conn.post_last({"type": "websocket.close", "code": code,
                        "reason": REASONS.get(code, "")})

    conn = Conn.of("ws", caller, send, close)
    sock = DriverSocket(edge, conn)
    with edge.holding(conn, edge.engine.channel, conn.account_id, sock.wake):
        sock.refresh()  # every pending offer, again (a reconnect loses none)
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                break
            if kind == "websocket.receive" and conn.closing is None:
                raw = message.get("text")
                sock.handle(raw if raw is not None else message.get("bytes") or b"")


async def long_poll(edge: Edge, scope: Scope, receive: Receive, send: Send) -> None:
    """GET /v1/drivers/me/offers?wait=N: the pending offers, after waiting up to N s for one
    when there is none. Subscribed before the first read, so an offer made in between is
    not missed."""
    admitted = await edge.admit(
        scope, send, lambda: (authenticate(DRIVERS, "this endpoint"), parse_query(OffersQuery)))
    if admitted is None:
        return
    caller, q = admitted
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    conn = Conn.of("poll", caller, send, lambda _code: done.set())
    me = conn.account_id

    def wake(_message: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(done.set)

    channel = edge.engine.channel
    with edge.holding(conn, channel, me, wake):
        offers = await edge.run(offers_payload, edge.engine, me)
        if not offers and q.wait > 0 and conn.closing is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), q.wait)
            # No wake-up on a channel that loses none: no offer was made since the read
            # above found none, so the answer stands without reading again.
            if conn.closing != REVOKED and channel.reread_after_wait(done.is_set()):
                offers = await edge.run(offers_payload, edge.engine, me)
    if conn.closing == REVOKED:
        def revoked() -> None:
            raise unauthorized("the token was revoked while waiting", invalid=True)

        await refuse(send, await edge.run(in_request_refusal, edge.flask, scope, revoked))
        return
    await respond(send, 200, dumps(offers).encode())
