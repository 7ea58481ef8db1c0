"""Plain ASGI answers for the edge's channels: an HTTP response, a refusal as the REST API
would word it, a refused WebSocket handshake."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .flaskside import Refusal

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Any], Any]


async def respond(send: Send, status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]] | None = None,
                  content_type: bytes = b"application/json") -> None:
    hdrs = _sized(headers or [], body)
    if not any(k == b"content-type" for k, _ in hdrs):
        hdrs.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def refuse(send: Send, refusal: Refusal) -> None:
    await respond(send, refusal.status, refusal.body, refusal.headers)


async def deny(scope: Scope, send: Send, refusal: Refusal) -> None:
    """Refuse a WebSocket handshake with an HTTP answer (the ASGI denial-response extension;
    a server without it gets a plain close, 403)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": refusal.status,
                    "headers": _sized(refusal.headers, refusal.body)})
        await send({"type": "websocket.http.response.body", "body": refusal.body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def _sized(headers: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    """`headers` with the content-length of `body` (the one given, if any, replaced)."""
    return [*((k, v) for k, v in headers if k != b"content-length"),
            (b"content-length", str(len(body)).encode())]


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)
