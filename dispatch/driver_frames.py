"""The driver's WebSocket protocol, without the socket: what a frame up means, and what goes
back down. The connection edge (ridehail/edge) does the I/O; the rules are here.

Frames up (JSON text):
    {"type": "location", "lat": .., "lng": .., "heading"?, "speed_mps"?, "ts"?: ISO 8601,
     "id"?: a client tag}
    {"type": "ping", "id"?: ..}
Frames down:
    {"type": "offer", "offer": {...}}          a pending offer, as the long-poll lists it
    {"type": "ack", "id"?: ..}                 the location was applied
    {"type": "pong", "id"?: ..}
    {"type": "error", "detail": .., "field": .., "id"?: ..}
A refused frame gets an error frame and the connection stays open. A location goes through
`dispatch.locations.parse_location`, the parser of POST /v1/drivers/me/location, so a location
one channel refuses, every channel refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ridehail.kernel.validation import loads

from .locations import BadLocation, Location, parse_location
from .model import DispatchError

MAX_TAG_CHARS = 64


@dataclass(frozen=True)
class Frame:
    kind: str  # "location" or "ping"
    tag: str | int | None = None
    location: Location | None = None


class FrameError(ValueError):
    def __init__(self, field: str, detail: str, tag: str | int | None = None) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail
        self.tag = tag


def parse_frame(raw: str | bytes, now: float) -> Frame:
    """A frame up, checked; raises FrameError naming the field."""
    try:
        frame = loads(raw)
    except ValueError as exc:
        raise FrameError("frame", f"frame is not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise FrameError("frame", "frame must be an object")
    tag = frame.pop("id", None)
    if tag is not None and not (
            (isinstance(tag, str) and len(tag) <= MAX_TAG_CHARS)
            or (isinstance(tag, int) and not isinstance(tag, bool) and abs(tag) < 2**53)):
        raise FrameError("id", f"id must be a string of at most {MAX_TAG_CHARS} characters "
                         "or an integer")
    kind = frame.pop("type", None)
    if kind == "ping":
        return Frame("ping", tag)
    if kind != "location":
        raise FrameError("type", "type: expected 'location' or 'ping'", tag)
    try:
        return Frame("location", tag, parse_location(frame, now))
    except BadLocation as exc:
        raise FrameError(exc.field, str(exc), tag) from None


ACK = '{"type":"ack"}'  # the most frequent frame down, written once


def reply(kind: str, tag: str | int | None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, **fields}
    if tag is not None:
        out["id"] = tag
    return out


def error_frame(exc: FrameError | BadLocation | DispatchError,
                tag: str | int | None = None) -> dict[str, Any]:
    """The error frame for a refused frame: a bad field names it; a driver who is not online
    (a DispatchError) is refused on `status`."""
    if isinstance(exc, FrameError):
        return reply("error", exc.tag, detail=exc.detail, field=exc.field)
    if isinstance(exc, BadLocation):
        return reply("error", tag, detail=str(exc), field=exc.field)
    return reply("error", tag, detail=str(exc), field="status")


def offer_frame(offer: dict[str, Any]) -> dict[str, Any]:
    return {"type": "offer", "offer": offer}
