"""The HTTP mode's WebSocket drivers: each holds `GET /v1/drivers/me/ws` open, gets its offers
pushed as `{"type": "offer", "offer": {...}}` frames and sends its locations up as
`{"type": "location", "lat", "lng", "ts"}` frames, as a driver app on a phone would.

One asyncio loop, in a thread of its own, runs every driver's connection (a task each): a
thousand drivers cost one thread, not a thousand. The simulation's threads reach it through
`send_locations` (the tick) and `send_location_acked` (the drop-off point, which must be applied
before the driver completes the trip); offers come back through `on_offer`, called on the loop's
thread (it must not block).

The server answers each location or ping frame with one `ack`, `error` or `pong` frame, in
order, so the answers are matched to the frames by their order on the connection. Error frames
are counted in the simulation's refusals by reason, like a refused request.

A connection that closes, or fails to open, is opened again after a backoff (0.5 s doubling to
10 s, with jitter): the server closes with 1001 when it shuts down, 4029 when the driver opened
a newer socket, 4008 after 60 s without a frame from the client (a ping goes up after
`PING_EVERY_S` without another frame). A refused handshake (401, 403) or a close with 4001
(token revoked) ends that driver's channel: a real app would ask the driver to log in again.
Every close but a normal one, and every failure to connect, is a refusal too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .http_client import Refusals, reason_of

PATH = "/v1/drivers/me/ws"
PING_EVERY_S = 20.0  # the server closes a socket idle for 60 s
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 10.0
OPEN_TIMEOUT_S = 10.0
ACK_TIMEOUT_S = 10.0
SEEN_OFFERS = 64  # offer ids remembered per driver (pending offers come again on reconnect)
FINAL_CLOSES = {4001}  # token revoked: connecting again cannot help
FINAL_STATUS = {401, 403}

log = logging.getLogger("simulator.ws")
T = TypeVar("T")


def ws_url(http_url: str) -> str:
    base = http_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):] + PATH
    if base.startswith("http://"):
        return "ws://" + base[len("http://"):] + PATH
    return base + PATH


@dataclass
class _Driver:
    index: int
    token: str
    ws: ClientConnection | None = None
    last_sent: float = 0.0  # loop time of the last frame sent
    opened: asyncio.Event = field(default_factory=asyncio.Event)  # connected at least once
    # One entry per location or ping frame sent on this connection, oldest first: the future
    # of a frame whose answer someone waits for, None for the others.
    answers: deque[asyncio.Future[dict[str, Any]] | None] = field(default_factory=deque)
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    task: asyncio.Task[None] | None = None


class WsDrivers:
    """The WebSocket connections of some of the simulation's drivers (by fleet index)."""

    def __init__(self, url: str, refusals: Refusals,
                 on_offer: Callable[[int, dict[str, Any]], None]) -> None:
        self.url = ws_url(url)
        self.refusals = refusals
        self.on_offer = on_offer
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._drivers: dict[int, _Driver] = {}
        self._closing = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sim-ws",
                                        daemon=True)

    # --- from the simulation's threads -----------------------------------------------------

    def start(self, tokens: dict[int, str]) -> None:
        """Open a connection for each driver index -> token (returns at once)."""
        self._thread.start()
        self._call(self._start(tokens), timeout=OPEN_TIMEOUT_S)

    def wait_connected(self, timeout: float) -> int:
        """Wait (at most `timeout` s) until every driver has connected once; how many have."""
        self._call(self._wait_opened(timeout), timeout=timeout + OPEN_TIMEOUT_S)
        return sum(d.opened.is_set() for d in self._drivers.values())

    def send_locations(self, points: Iterable[tuple[int, float, float]]) -> None:
        """Each driver's location as a frame (drivers not connected now skip this one)."""
        try:
            self._call(self._send_locations(list(points)), timeout=ACK_TIMEOUT_S)
        except FutureTimeout:
            self._count("locations_unsent_timeout")

    def send_location_acked(self, index: int, lat: float, lng: float) -> bool:
        """The location as a frame, and wait for its answer: True once the server acked it;
        False when it refused it, or the driver is not connected or no answer came."""
        try:
            return self._call(self._send_acked(index, lat, lng), timeout=ACK_TIMEOUT_S + 1.0)
        except FutureTimeout:
            return False

    def stats(self) -> dict[str, int]:
        """What the channel did: drivers, connections opened, offers pushed (and repeats of
        one already seen), location frames sent and their acks and errors, pings, closes."""
        with self._counts_lock:
            out = dict(sorted(self._counts.items()))
        out["drivers"] = len(self._drivers)
        out["connected"] = sum(d.ws is not None for d in self._drivers.values())
        return out

    def close(self) -> None:
        """Close every connection (1000) and stop the loop's thread."""
        if not self._thread.is_alive():
            return
        try:
            self._call(self._close(), timeout=OPEN_TIMEOUT_S)
        except FutureTimeout:
            log.warning("closing the WebSocket drivers timed out")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(OPEN_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coro: Any, timeout: float) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()
            raise

    def _count(self, key: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[key] += n

    # --- on the loop -----------------------------------------------------------------------

    async def _start(self, tokens: dict[int, str]) -> None:
        for index, token in tokens.items():
            d = self._drivers[index] = _Driver(index, token)
            d.task = asyncio.create_task(self._drive(d), name=f"ws-driver-{index}")

    async def _wait_opened(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(d.opened.wait() for d in self._drivers.values())), timeout)

    async def _drive(self, d: _Driver) -> None:
        backoff = BACKOFF_MIN_S
        headers = {"Authorization": f"Bearer {d.token}"}
        while not self._closing:
            code: int | None = None
            try:
                async with connect(self.url, additional_headers=headers,
                                   open_timeout=OPEN_TIMEOUT_S) as ws:
                    d.ws, d.last_sent = ws, self._loop.time()
                    if d.opened.is_set():
                        self._count("reconnects")
                    d.opened.set()
                    self._count("connects")
                    backoff = BACKOFF_MIN_S
                    keepalive = asyncio.create_task(self._keepalive(d, ws))
                    try:
                        async for raw in ws:
                            self._frame(d, raw)
                    finally:
                        keepalive.cancel()
                        self._forget(d)
                    code = ws.close_code  # a normal close (1000, 1001) ends the loop quietly
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else 1006
            except InvalidStatus as exc:
                status = exc.response.status_code
                self.refusals.add(reason_of("WS", PATH, status,
                                            exc.response.body.decode("utf-8", "replace")
                                            if exc.response.body else ""))
                if status in FINAL_STATUS:
                    self._count("gave_up")
                    return
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                self.refusals.add(reason_of("WS", PATH, type(exc).__name__, ""))
            finally:
                self._forget(d)
            if self._closing:
                return
            if code is not None:
                self._count(f"closed_{code}")
                if code not in (1000, 1001):
                    self.refusals.add(reason_of("WS", PATH, f"closed {code}", ""))
                if code in FINAL_CLOSES:
                    self._count("gave_up")
                    return
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            backoff = min(2 * backoff, BACKOFF_MAX_S)

    def _forget(self, d: _Driver) -> None:
        """The connection is gone: nobody will answer the frames still waiting."""
        d.ws = None
        while d.answers:
            fut = d.answers.popleft()
            if fut is not None and not fut.done():
                fut.set_result({"type": "error", "detail": "connection closed"})

    async def _keepalive(self, d: _Driver, ws: ClientConnection) -> None:
        """A ping frame when nothing else went up for PING_EVERY_S (the server's idle rule
        counts the client's frames; protocol pings are not enough)."""
        while True:
            wait = d.last_sent + PING_EVERY_S - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if await self._send(d, ws, {"type": "ping"}, None):
                self._count("pings")

    def _frame(self, d: _Driver, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            self.refusals.add(reason_of("WS", PATH, "frame", "not JSON"))
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "offer":
            offer = frame.get("offer")
            oid = str(offer.get("id")) if isinstance(offer, dict) else None
            if offer is None or oid is None:
                self.refusals.add(reason_of("WS", PATH, "frame", "offer without an id"))
            elif oid in d.seen:
                self._count("offers_repeated")
            else:
                d.seen[oid] = None
                if len(d.seen) > SEEN_OFFERS:
                    d.seen.popitem(last=False)
                self._count("offers")
                try:
                    self.on_offer(d.index, offer)
                except Exception:
                    log.exception("offer handler failed")
            return
        if kind in ("ack", "error", "pong"):
            self._count(f"{kind}s")
            if kind == "error":
                self.refusals.add(reason_of("WS", PATH, "error", json.dumps(frame)))
            fut = d.answers.popleft() if d.answers else None
            if fut is not None and not fut.done():
                fut.set_result(frame)
            return
        self.refusals.add(reason_of("WS", PATH, "frame", f"unexpected type {kind!r}"))

    async def _send(self, d: _Driver, ws: ClientConnection, frame: dict[str, Any],
                    answer: asyncio.Future[dict[str, Any]] | None) -> bool:
        if frame["type"] == "location":
            # Stamped just before it goes out: frames leave in the order of their stamps, so
            # none is older than one the server already took from this driver.
            frame["ts"] = datetime.now(UTC).isoformat()
        d.answers.append(answer)
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False  # the driver's task reconnects; _forget drops the answer
        d.last_sent = self._loop.time()
        return True

    async def _send_locations(self, points: list[tuple[int, float, float]]) -> None:
        sent = unsent = 0
        for index, lat, lng in points:
            d = self._drivers.get(index)
            ws = d.ws if d is not None else None
            if d is None or ws is None:
                unsent += 1
                continue
            ok = await self._send(d, ws, {"type": "location", "lat": lat, "lng": lng}, None)
            sent += ok
            unsent += not ok
        self._count("locations", sent)
        if unsent:
            self._count("locations_unsent", unsent)

    async def _send_acked(self, index: int, lat: float, lng: float) -> bool:
        d = self._drivers.get(index)
        ws = d.ws if d is not None else None
        if d is None or ws is None:
            return False
        answer: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        if not await self._send(d, ws, {"type": "location", "lat": lat, "lng": lng}, answer):
            return False
        self._count("locations")
        try:
            got = await asyncio.wait_for(answer, ACK_TIMEOUT_S)
        except TimeoutError:
            return False
        return bool(got.get("type") == "ack")

    async def _close(self) -> None:
        self._closing = True
        tasks = [d.task for d in self._drivers.values() if d.task is not None]
        await asyncio.gather(*(d.ws.close() for d in self._drivers.values()
                               if d.ws is not None), return_exceptions=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
