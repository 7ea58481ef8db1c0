"""Location frames of every driver's socket, applied in batches: while one batch is applied
(in the edge's thread pool), the next gathers. A batch goes to `Engine.update_locations`, the
path of a fleet gateway's batch (the same rules as every channel); each frame then gets its
ack, or an error frame naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from dispatch.driver_frames import ACK, Frame, error_frame, reply
from dispatch.engine import Engine
from ridehail.kernel.logging import get_logger

log = get_logger(__name__)


class Sender(Protocol):
    me: str

    def send(self, frame: dict[str, Any]) -> None: ...

    def send_text(self, text: str) -> None: ...


# Frames gather for this long before a batch goes to the engine: one hand-off to the thread
# pool per window instead of one per frame (at thousands of frames a second, the hand-offs and
# the GIL passing between the loop and the pool cost more than the frames).
WINDOW_S = 0.02


class LocationFrames:
    """Location frames of every socket, applied in batches: a batch gathers for WINDOW_S
    (or while the previous one is applied, in the thread pool)."""

    def __init__(self, engine: Engine, run: Callable[..., Awaitable[Any]]) -> None:
        self.engine = engine
        self.run = run  # the edge's thread pool
        self.pending: list[tuple[Sender, Frame]] = []
        self.flushing = False

    def add(self, sock: Sender, frame: Frame) -> None:
        self.pending.append((sock, frame))
        if not self.flushing:
            self.flushing = True
            asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        eng = self.engine
        try:
            await asyncio.sleep(WINDOW_S)
            while self.pending:
                batch, self.pending = self.pending, []
                rows = []
                for sock, frame in batch:
                    loc = frame.location
                    assert loc is not None  # only location frames are added
                    rows.append((sock.me, loc.lat, loc.lng, loc.ts))
                try:
                    _accepted, rejected = await self.run(eng.update_locations, rows)
                except Exception as exc:  # noqa: BLE001 - e.g. Redis away (scaled mode)
                    log.warning("location frames not applied", error=repr(exc), rows=len(rows))
                    for sock, frame in batch:
                        sock.send(reply("error", frame.tag, field="frame",
                                        detail="locations are unavailable; retry"))
                    continue
                refused = {r["index"]: r for r in rejected}
                for i, (sock, frame) in enumerate(batch):
                    row = refused.get(i)
                    if row is None:
                        if frame.tag is None:
                            sock.send_text(ACK)
                        else:
                            sock.send(reply("ack", frame.tag))
                    else:
                        sock.send(error_frame(eng.drivers.refusal(sock.me, row), frame.tag))
        finally:
            self.flushing = False

