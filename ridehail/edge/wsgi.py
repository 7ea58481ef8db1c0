"""The Flask app behind the edge: a request is read whole on the loop (up to the body limit),
answered by Flask in one hop to a pool thread, and written back on the loop.

a2wsgi, which this replaces, ran the app in its pool but bounced every read and every write
back to the loop and waited for it: four or five round trips a request, each needing the GIL
on both sides, so under load a request queued once per hop behind the loop's work (py-spy:
a third of the process's GIL time in those hand-offs). The REST API's answers are small and
never streamed (the streams are the edge's own, on the loop), so one hop each way is enough.
"""

from __future__ import annotations

import contextvars
import io
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ridehail.kernel.deferred import answering, run_all
from ridehail.kernel.logging import get_logger

from .pool import in_pool

log = get_logger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Any], Any]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_INTERNAL_ERROR = (b'{"type":"about:blank","title":"Internal Server Error","status":500,'
                   b'"detail":"the server failed to answer this request"}')


def environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP or WebSocket scope, with `body` as its
    input. Repeated headers are joined with commas, as WSGI servers do."""
    root = scope.get("root_path", "")
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root):]
    server = scope.get("server") or ("localhost", 80)
    env: dict[str, Any] = {
        "REQUEST_METHOD": scope.get("method", "GET"),
        "SCRIPT_NAME": root.encode("utf-8").decode("latin-1"),
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 0),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": {"ws": "http", "wss": "https"}.get(
            scope.get("scheme", "http"), scope.get("scheme", "http")),
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client:
        env["REMOTE_ADDR"], env["REMOTE_PORT"] = str(client[0]), str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            name = "HTTP_" + name
        value = raw_value.decode("latin-1")
        env[name] = f"{env[name]},{value}" if name in env else value
    return env


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body, or its first `limit + 1` bytes if it is longer (the app answers
    413 from the length); None if the client went away."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
            size += len(chunk)
        if size > limit or not message.get("more_body", False):
            body = b"".join(chunks)
            return body[:limit + 1]


class FlaskBridge:
    """ASGI in front of a WSGI app (Flask), for requests whose answers are small."""

    def __init__(self, app: WsgiApp, workers: int, max_body: int, name: str = "flask") -> None:
        self.app = app
        self.max_body = max_body
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_body:
            body: bytes | None = b""  # the app refuses it from the length, unread
        else:
            body = await read_body(receive, self.max_body)
        if body is None:
            return
        env = environ(scope, body)
        if declared is None:
            # Read whole, a chunked body has a length now; past the limit, the app's 413.
            env.pop("HTTP_TRANSFER_ENCODING", None)
            env["CONTENT_LENGTH"] = str(len(body))
        context = contextvars.copy_context()
        later: list[Callable[[], None]] = []  # what the app deferred (`after_answer`)
        try:
            status, headers, payload = await in_pool(
                self.pool, context.run, self._answer, env, later, then=lambda: run_all(later))
        except Exception:
            log.exception("the app failed to answer %s %s", scope.get("method"),
                          scope.get("path"))
            status, payload = 500, _INTERNAL_ERROR
            headers = [(b"content-type", b"application/problem+json"),
                       (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _answer(self, env: dict[str, Any], later: list[Callable[[], None]]
                ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The app's whole answer to `env`, in a pool thread; what the app deferred until the
        answer is on its way (`ridehail.kernel.deferred`) goes into `later`."""
        with answering(later):
            return self._call_app(env)

    def _call_app(self, env: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return written.append

        result = self.app(env, start_response)
        try:
            for chunk in result:
                if chunk:
                    written.append(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return (int(status.split(" ", 1)[0]),
                [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                b"".join(written))

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
