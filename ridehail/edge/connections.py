"""The open connections of one process, and the limits on them.

Each WebSocket, long-poll and event stream is a `Conn`: it knows its account, the hash of the
token it authenticated with and how to close itself. The registry enforces:

- at most `conn_max_per_account` connections of one kind per account: one more closes the
  oldest (WebSocket close 4029, a stream's `close` event, a long-poll answered at once);
- at most `conn_max_connections` in the process (the next is refused);
- revocation: a revoked token's connections (or all of an account's) close with 4001;
- idleness: a WebSocket with no frame from its client for `conn_idle_s` closes with 4008;
- shutdown: everything closes with 1001 (going away).

All of it runs on the event loop's thread; only `Registry.revoked` is called from elsewhere
(the revocation channel's publisher) and hops onto the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ridehail.kernel.logging import get_logger

if TYPE_CHECKING:
    from .flaskside import Caller

log = get_logger(__name__)

# Close codes (RFC 6455 reserves 4000-4999 for applications; each mirrors an HTTP status).
ENDED = 1000  # a rider's stream: the trip ended
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
REVOKED = 4001  # 401: the token was revoked or expired
IDLE = 4008  # 408: no frame for conn_idle_s
REPLACED = 4029  # 429: the account opened more connections of this kind than allowed
TOO_SLOW = 4010  # the client does not read what is sent to it

REASONS = {
    GOING_AWAY: "the server is shutting down; reconnect",
    REVOKED: "the token was revoked or expired",
    IDLE: "idle: no frame from the client",
    REPLACED: "replaced: too many connections for this account",
    TOO_SLOW: "the client does not read its frames",
    TRY_AGAIN_LATER: "too many connections; try again later",
}
REASON_NAMES = {ENDED: "trip_ended", GOING_AWAY: "shutdown", REVOKED: "revoked", IDLE: "idle",
                REPLACED: "replaced", TOO_SLOW: "too_slow", TRY_AGAIN_LATER: "overloaded"}

MAX_OUTBOX = 256  # frames queued for a client that does not read: beyond, it is closed


class Conn:
    """One connection. `send` writes one ASGI message; frames go through `post`, which queues
    them for a single writer task (so a slow client never blocks its sender)."""

    counted: Callable[[int], None] | None = None  # the process's count of closes, by code

    __slots__ = ("account_id", "closed", "closing", "expires_at", "kind", "last_rx",
                 "on_close", "outbox", "token_hash", "_send", "_writer")

    def __init__(self, kind: str, account_id: str, token_hash: str,
                 send: Callable[[Any], Coroutine[Any, Any, None]],
                 on_close: Callable[[int], None], expires_at: datetime | None = None) -> None:
        self.kind = kind
        self.account_id = account_id
        self.token_hash = token_hash
        # When the token it opened with expires (epoch s): the connection ends then, as a
        # revoked one does, and the client comes back with a valid token.
        self.expires_at = None if expires_at is None else expires_at.timestamp()
        self.last_rx = time.monotonic()
        self.outbox: deque[Any] = deque()
        self.closing: int | None = None  # the close code once a close was asked for
        self.closed = False
        self.on_close = on_close  # how this kind of connection ends (a frame, an event...)
        self._send = send
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, kind: str, caller: Caller, send: Callable[[Any], Coroutine[Any, Any, None]],
           on_close: Callable[[int], None]) -> Conn:
        """The connection `caller` opened: their account, their token and its expiry."""
        return cls(kind, caller.principal.account_id, caller.token_hash, send, on_close,
                   caller.principal.expires_at)

    def post(self, message: Any) -> None:
        """Queue one ASGI message for the client (written at once when nothing is queued
        and the transport takes it: see `_write_now`)."""
        if self.closed or self.closing is not None:
            return
        if self._writer is None and not self.outbox:
            self._write_now(message)
            return
        if len(self.outbox) >= MAX_OUTBOX:
            self.close(TOO_SLOW)
            return
        self.outbox.append(message)
        self._start_writer()

    def _write_now(self, message: Any) -> None:
        """Write `message` on the caller's turn of the loop, as Python 3.12's eager tasks do:
        the server's `send` finishes without suspending unless the transport pushes back, so
        a frame costs no task of its own (a task per frame was a sixth of the loop's time at
        10,000 sockets). If it does suspend, a writer task resumes it, and what is posted
        meanwhile queues behind it."""
        coro = self._send(message)
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        except Exception:  # noqa: BLE001 - the client went away
            self.closed = True
            return
        self._start_writer(coro, waiting)

    def post_last(self, message: Any, *, keep_queued: bool = False) -> None:
        """Queue the connection's last message (a close frame, a final event), dropping
        whatever was still queued unless `keep_queued` (an ending that follows its news)."""
        if not keep_queued:
            self.outbox.clear()
        self.outbox.append(message)
        self._start_writer()

    async def drained(self) -> None:
        """Until what is queued has been written (or the client is gone)."""
        while self._writer is not None:
            await asyncio.wait({self._writer})

    def _start_writer(self, coro: Any = None, waiting: Any = None) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain(coro, waiting))

    async def _drain(self, coro: Any = None, waiting: Any = None) -> None:
        """Write what is queued; first, if given, finish `coro` (a write suspended on
        `waiting`, a future or None for a bare yield)."""
        try:
            while coro is not None:
                if waiting is None:
                    await asyncio.sleep(0)
                else:
                    waiting._asyncio_future_blocking = False  # as a task's step would
                    await asyncio.wait([waiting])
                try:
                    waiting = coro.send(None)
                except StopIteration:
                    coro = None
            while self.outbox and not self.closed:
                await self._send(self.outbox.popleft())
        except Exception:  # noqa: BLE001 - the client went away mid-send
            self.closed = True
        finally:
            if coro is not None:
                coro.close()
            self._writer = None

    def close(self, code: int) -> None:
        """Ask the connection to end with `code` (once; the kind decides how)."""
        if self.closing is not None or self.closed:
            return
        self.closing = code
        self.on_close(code)
        if Conn.counted is not None:
            Conn.counted(code)


class Registry:
    def __init__(self, *, max_per_account: int, max_connections: int, idle_s: float) -> None:
        self.max_per_account = max_per_account
        self.max_connections = max_connections
        self.idle_s = idle_s
        self.all: set[Conn] = set()
        self._by_account: dict[tuple[str, str], list[Conn]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.counts: dict[str, int] = {"ws": 0, "poll": 0, "sse": 0}
        # Told each new count (kind, n): the edge's gauge, written on change because with
        # several processes a gauge is read from shared files, not computed at scrape time.
        self.on_count: Callable[[str, int], None] | None = None

    def full(self) -> bool:
        return len(self.all) >= self.max_connections

    def add(self, conn: Conn) -> None:
        """Register `conn`; the account's oldest connections of its kind beyond the cap are
        closed (REPLACED)."""
        self.all.add(conn)
        self._count(conn.kind, +1)
        same = self._by_account.setdefault((conn.kind, conn.account_id), [])
        same.append(conn)
        while len([c for c in same if c.closing is None]) > self.max_per_account:
            oldest = next(c for c in same if c.closing is None)
            oldest.close(REPLACED)

    def remove(self, conn: Conn) -> None:
        if conn not in self.all:
            return
        self.all.discard(conn)
        self._count(conn.kind, -1)
        key = (conn.kind, conn.account_id)
        same = self._by_account.get(key)
        if same is not None:
            same.remove(conn)
            if not same:
                del self._by_account[key]

    def _count(self, kind: str, step: int) -> None:
        self.counts[kind] += step
        if self.on_count is not None:
            self.on_count(kind, self.counts[kind])

    def of_account(self, account_id: str) -> list[Conn]:
        return [c for kind in ("ws", "poll", "sse")
                for c in self._by_account.get((kind, account_id), ())]

    def revoked(self, message: dict[str, Any]) -> None:
        """The revocation channel's callback (any thread): the token named by its hash, or
        every token of the account (`token` None), is no longer valid."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._close_revoked, str(message.get("account_id")),
                                  message.get("token"))

    def _close_revoked(self, account_id: str, token: str | None) -> None:
        for conn in self.of_account(account_id):
            if token is None or conn.token_hash == token:
                conn.close(REVOKED)

    def sweep(self) -> int:
        """Close WebSockets whose client sent nothing for `idle_s` (IDLE), and connections
        whose token has expired since they opened (REVOKED: authentication is checked at the
        opening, so an open socket would otherwise outlive its token)."""
        cutoff = time.monotonic() - self.idle_s
        now = time.time()
        closed = 0
        for conn in list(self.all):
            if conn.expires_at is not None and conn.expires_at <= now:
                conn.close(REVOKED)
            elif conn.kind == "ws" and conn.last_rx < cutoff:
                conn.close(IDLE)
            else:
                continue
            closed += 1
        return closed

    def close_all(self, code: int = GOING_AWAY) -> None:
        for conn in list(self.all):
            conn.close(code)
