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
    hdrs = [(k, v) for k, v in (headers or []) if k not in (b"content-length",)]
    if not any(k == b"content-type" for k, _ in hdrs):
        hdrs.append((b"content-type", content_type))
    hdrs.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def refuse(send: Send, refusal: Refusal) -> None:
    await respond(send, refusal.status, refusal.body, refusal.headers)


async def deny(scope: Scope, send: Send, refusal: Refusal) -> None:
    """Refuse a WebSocket handshake with an HTTP answer (the ASGI denial-response extension;
    a server without it gets a plain close, 403)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        hdrs = [(k, v) for k, v in refusal.headers if k != b"content-length"]
        hdrs.append((b"content-length", str(len(refusal.body)).encode()))
        await send({"type": "websocket.http.response.start", "status": refusal.status,
                    "headers": hdrs})
        await send({"type": "websocket.http.response.body", "body": refusal.body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)
