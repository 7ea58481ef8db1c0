"""A connection's writes (`ridehail.edge.connections.Conn`): a frame is written on the
caller's turn when nothing is queued, and one the transport holds back keeps its place ahead
of those posted after it. The `send` here is an ASGI send whose transport pushes back on one
message, as uvicorn's does when the client's window is full."""

from __future__ import annotations

import asyncio
from typing import Any

from ridehail.edge.connections import Conn


class Transport:
    """An ASGI send: each message is written at once, except `hold`, which waits until
    `release` is set (the peer's window opens)."""

    def __init__(self, hold: str | None = None) -> None:
        self.hold = hold
        self.release = asyncio.Event()
        self.written: list[str] = []

    async def send(self, message: dict[str, Any]) -> None:
        if message["text"] == self.hold:
            await self.release.wait()
        if message["text"] == "boom":
            raise OSError("connection reset by peer")
        self.written.append(message["text"])


def frame(text: str) -> dict[str, Any]:
    return {"type": "websocket.send", "text": text}


def test_a_frame_is_written_on_the_callers_turn_without_a_task() -> None:
    async def run() -> tuple[list[str], int, int]:
        wire = Transport()
        conn = Conn("ws", "1", "h", wire.send, lambda _code: None)
        tasks_before = len(asyncio.all_tasks())
        conn.post(frame("a"))
        conn.post(frame("b"))
        written_now = list(wire.written)  # before this coroutine yields once
        return written_now, tasks_before, len(asyncio.all_tasks())

    written, tasks_before, tasks_after = asyncio.run(run())
    assert written == ["a", "b"]
    assert tasks_after == tasks_before


def test_a_write_the_transport_holds_back_keeps_its_place_in_order() -> None:
    async def run() -> tuple[list[str], list[str], bool]:
        wire = Transport(hold="slow")
        conn = Conn("ws", "1", "h", wire.send, lambda _code: None)
        conn.post(frame("first"))
        conn.post(frame("slow"))  # suspends: the rest must queue behind it
        conn.post(frame("after-1"))
        conn.post(frame("after-2"))
        await asyncio.sleep(0.01)
        held = list(wire.written)
        wire.release.set()
        await asyncio.wait_for(conn.drained(), 5)
        return held, wire.written, conn.closed

    held, written, closed = asyncio.run(run())
    assert held == ["first"]
    assert written == ["first", "slow", "after-1", "after-2"]
    assert not closed


def test_a_write_that_fails_marks_the_connection_closed_and_drops_the_rest() -> None:
    async def run() -> tuple[list[str], bool]:
        wire = Transport(hold="slow")
        conn = Conn("ws", "1", "h", wire.send, lambda _code: None)
        conn.post(frame("boom"))  # fails on the caller's turn
        closed_at_once = conn.closed
        conn.post(frame("never"))
        await asyncio.sleep(0)
        return wire.written, closed_at_once

    written, closed = asyncio.run(run())
    assert closed
    assert written == []
