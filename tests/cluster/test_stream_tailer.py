"""One tailer reads several Redis streams with one blocking XREAD (dispatch/feed.py:StreamTailer,
on real Redis): each stream's entries reach its own handler, each stream starts where it was
asked to (new entries only, or a window's worth), and one thread does it all."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.feed import StreamTailer
from tests.conftest import NEEDS_REDIS

pytestmark = NEEDS_REDIS


@pytest.fixture
def second(stream: tuple[Any, str]) -> Iterator[str]:
    redis, name = stream
    other = name + ":second"
    yield other
    redis.delete(other)


def test_one_tailer_reads_each_stream_from_its_own_start_into_its_own_handler(
        stream: tuple[Any, str], second: str) -> None:
    redis, first = stream
    redis.xadd(first, {"n": "before"})  # read from "$": never delivered
    redis.xadd(second, {"n": "in the window"})  # read from `since`: delivered
    seen: dict[str, list[tuple[str, str]]] = {first: [], second: []}
    done = threading.Event()

    def handler(name: str) -> Any:
        def handle(fields: dict[bytes, bytes]) -> None:
            seen[name].append((fields[b"n"].decode(), threading.current_thread().name))
            if len(seen[first]) == 2 and len(seen[second]) == 2:
                done.set()
        return handle

    tailer = StreamTailer(redis, first, handler(first), name="both")
    tailer.also(second, handler(second), since=time.time() - 60)
    tailer.start()
    try:
        pipe = redis.pipeline(transaction=False)  # as BatchedRedis sends a use case's entries
        pipe.xadd(first, {"n": "a"})
        pipe.xadd(second, {"n": "b"})
        pipe.execute()
        redis.xadd(first, {"n": "c"})
        assert done.wait(10), f"entries not delivered: {seen}"
    finally:
        tailer.stop()
    assert [n for n, _ in seen[first]] == ["a", "c"]
    assert [n for n, _ in seen[second]] == ["in the window", "b"]
    assert {thread for entries in seen.values() for _, thread in entries} == {"both"}


def test_a_stream_is_added_once_and_before_the_tailer_starts(stream: tuple[Any, str],
                                                            second: str) -> None:
    redis, first = stream
    tailer = StreamTailer(redis, first, lambda _f: None, name="once")
    with pytest.raises(ValueError, match="once"):
        tailer.also(first, lambda _f: None)
    tailer.start()
    try:
        with pytest.raises(ValueError, match="before start"):
            tailer.also(second, lambda _f: None)
    finally:
        tailer.stop()


def test_a_wake_up_reaches_the_other_process_once_and_not_its_own_again(
        stream: tuple[Any, str]) -> None:
    """The channels' relay (dispatch/cluster.py:RedisChannels): published on process a, a
    message wakes a's subscriber directly and b's through the stream; a's tailer skips it."""
    from dispatch.cluster import RedisChannels

    redis, name = stream
    a, b = (RedisChannels(redis, origin, ("offers",), stream=name) for origin in ("a", "b"))
    got: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    both = {"a": threading.Event(), "b": threading.Event()}

    def subscriber(who: str) -> Any:
        def woken(message: dict[str, Any]) -> None:
            got[who].append(message)
            if len(got[who]) == 2:
                both[who].set()
        return woken

    a.channel("offers").subscribe("driver-1", subscriber("a"))
    b.channel("offers").subscribe("driver-1", subscriber("b"))
    tailers = [StreamTailer(redis, name, parts.handler(), name=f"wake-ups-{parts.origin}")
               for parts in (a, b)]
    for t in tailers:
        t.start()
    try:
        assert a.channel("offers").publish("driver-1", {"offer_id": "7"}) == 1  # a's own
        b.channel("offers").publish("driver-1", {"offer_id": "8"})
        assert both["a"].wait(10) and both["b"].wait(10), f"not delivered: {got}"
        # a's tailer reads b's entry after its own: had it not skipped its own, a third
        # delivery (a's "7" again) would be in before b's "8". b's own "8" is delivered at
        # once, so it may come before a's "7", which b's tailer reads.
    finally:
        for t in tailers:
            t.stop()
    assert [m["offer_id"] for m in got["a"]] == ["7", "8"]
    assert sorted(m["offer_id"] for m in got["b"]) == ["7", "8"]
