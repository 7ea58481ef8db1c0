"""The edge's hand-off of blocking work to a thread pool, and back to the loop.

`loop.run_in_executor` makes a concurrent future, wraps it in an asyncio one and chains the
two with callbacks both ways (py-spy at 10,000 connections: `wrap_future`, `_chain_future`
and `add_done_callback` were 5% of the process's GIL time). Here the pool thread settles the
loop's future itself, with one call onto the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

T = TypeVar("T")


async def in_pool(pool: Executor, fn: Callable[..., T], *args: Any,
                  then: Callable[[], None] | None = None) -> T:
    """`fn(*args)` in a thread of `pool`; its result (or exception) on the loop. `then`, if
    given, runs in that thread once the result is on its way to the loop (work the awaiting
    coroutine does not wait for)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    pool.submit(_work, loop, future, fn, args, then)
    return await future


def _work(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], fn: Callable[..., Any],
          args: tuple[Any, ...], then: Callable[[], None] | None) -> None:
    try:
        result = fn(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
        _settle_soon(loop, future, _fail, exc)
    else:
        _settle_soon(loop, future, _succeed, result)
    if then is not None:
        then()


def _settle_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any],
                 settle: Callable[[asyncio.Future[Any], Any], None], value: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(settle, future, value)


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
