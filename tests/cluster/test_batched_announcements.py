"""A use case's announcements after its commit go to Redis in one round trip
(dispatch/cluster.py:BatchedRedis, on real Redis), and stay best effort."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.cluster import BatchedRedis, RedisDemandEvents, RedisDriverEvents
from dispatch.feed import redis_client
from tests.conftest import NEEDS_REDIS, REDIS_URL, free_port

pytestmark = NEEDS_REDIS


@pytest.fixture
def streams() -> Iterator[tuple[Any, str, str]]:
    redis = redis_client(REDIS_URL)
    tag = uuid.uuid4().hex
    events, demand = f"test:events:{tag}", f"test:demand:{tag}"
    yield redis, events, demand
    redis.delete(events, demand)


def test_a_batch_sends_its_announcements_when_it_ends_in_order(
        streams: tuple[Any, str, str]) -> None:
    redis, events_stream, demand_stream = streams
    batched = BatchedRedis(redis)
    events = RedisDriverEvents(batched, "a", stream=events_stream)
    demand = RedisDemandEvents(batched, "a", stream=demand_stream)
    with batched.batch():
        demand.announce(40.75, -73.98, 1.0)
        events.announce("7", "offered", "standard", "9", 1)
        events.announce("7", "available", "standard", None, 2)
        assert redis.xlen(events_stream) == 0 and redis.xlen(demand_stream) == 0
    assert redis.xlen(demand_stream) == 1
    sent = [f[b"s"] for _id, f in redis.xrange(events_stream)]
    assert sent == [b"offered", b"available"]


def test_outside_a_batch_and_on_other_threads_commands_go_at_once(
        streams: tuple[Any, str, str]) -> None:
    redis, events_stream, _ = streams
    batched = BatchedRedis(redis)
    events = RedisDriverEvents(batched, "a", stream=events_stream)
    events.announce("7", "offered", "standard", "9", 1)
    assert redis.xlen(events_stream) == 1
    with batched.batch():
        other = threading.Thread(target=events.announce, args=("8", "offered", None, None, 1))
        other.start()
        other.join()
        assert redis.xlen(events_stream) == 2  # the other thread's went at once
        with batched.batch():  # nested: the outer batch sends
            events.announce("7", "available", "standard", None, 2)
        assert redis.xlen(events_stream) == 2
    assert redis.xlen(events_stream) == 3


def test_a_batch_redis_refuses_is_logged_not_raised() -> None:
    # The change is committed when its announcements go: Redis away must not turn the
    # request into an error (as each announcer already swallows its own failure).
    down = redis_client(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    batched = BatchedRedis(down)
    with batched.batch():
        RedisDriverEvents(batched, "a").announce("7", "offered", "standard", "9", 1)
        RedisDemandEvents(batched, "a").announce(40.75, -73.98, 1.0)
    with batched.batch():
        pass  # nothing queued: nothing sent


def test_a_driver_event_carries_the_row_version_to_the_other_processes(
        streams: tuple[Any, str, str]) -> None:
    # The version orders a driver's changes in every mirror (DriverDirectory._mirror); an
    # event of an older release, without one, applies as given.
    redis, events_stream, _ = streams
    RedisDriverEvents(redis, "a", stream=events_stream).announce("7", "en_route", "standard",
                                                                 "9", 5)
    redis.xadd(events_stream, {"o": "a", "d": "8", "s": "available", "c": "xl", "t": ""})
    got: list[tuple[Any, ...]] = []
    mine = RedisDriverEvents(redis, "a", stream=events_stream).handler(lambda *e: got.append(e))
    theirs = RedisDriverEvents(redis, "b", stream=events_stream).handler(
        lambda *e: got.append(e))
    for _id, fields in redis.xrange(events_stream):
        mine(fields)  # its own: skipped
        theirs(fields)
    assert got == [("7", "en_route", "standard", "9", 5), ("8", "available", "xl", None, None)]
