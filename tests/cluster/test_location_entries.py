"""The scaled mode's location feed on real Redis (dispatch/feed.py): a batch published by one
process reaches another process's index whole, as columns; bad rows are refused before they
are shared, with the same reasons whichever way they are checked; an entry another version
wrote is refused, not misread."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis as redis_lib

from dispatch.feed import (
    CHUNK_ROWS,
    FeedRows,
    InProcessFeed,
    RedisStreamFeed,
    apply_location_entry,
    decode_entry,
    redis_client,
)
from geoindex import GeoIndex
from tests.conftest import NEEDS_REDIS, REDIS_URL
from tests.dispatch.conftest import directory_for

pytestmark = NEEDS_REDIS

NOW = 1_790_000_000.0


@pytest.fixture
def feed() -> Iterator[tuple[Any, RedisStreamFeed]]:
    redis = redis_client(REDIS_URL)
    stream = f"test:locations:{uuid.uuid4().hex}"
    yield redis, RedisStreamFeed(redis, "a", stream=stream)
    redis.delete(stream)


def rows_of(*rows: tuple[str, Any, Any, bool, str, Any]) -> FeedRows:
    """Rows as the directory hands them to the feed: the coordinates as given (a list, whose
    odd values are refused by name), availability and times as arrays."""
    ids, lats, lngs, available, classes, ts = zip(*rows, strict=True)
    return FeedRows(ids=list(ids), lats=list(lats), lngs=list(lngs),
                    available=np.array(available, dtype=bool), classes=list(classes),
                    ts=np.array(ts, dtype=np.float64))


def entries(redis: Any, stream: str) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in redis.xrange(stream)]


def test_a_batch_reaches_another_index_whole(feed: tuple[Any, RedisStreamFeed]) -> None:
    redis, pub = feed
    n = CHUNK_ROWS + 7  # two entries
    rng = np.random.default_rng(3)
    lats, lngs = rng.uniform(40.70, 40.80, n), rng.uniform(-74.01, -73.94, n)
    rows = rows_of(*((str(1000 + i), float(lats[i]), float(lngs[i]), i % 3 != 0,
                      "xl" if i % 2 else "standard", NOW - i * 0.5) for i in range(n)))
    assert pub.publish(rows).applied == n
    index = GeoIndex(ttl_s=10_000, clock=lambda: NOW)
    fields = entries(redis, pub.stream)
    assert len(fields) == 2
    # The receiving process knows driver 1000 as busy and xl: its own view wins.
    known = {"1000": (False, "xl")}
    here = directory_for(index)
    here.apply_event("1000", "en_route", "xl", "7", 2)
    assert sum(apply_location_entry(index, f, here) for f in fields) == n
    snap = index.publish()
    for i in (0, 1, 500, n - 1):
        got = snap.get(str(1000 + i))
        assert got is not None
        assert (got.lat, got.lng, got.ts) == (lats[i], lngs[i], NOW - i * 0.5)
        want = known.get(str(1000 + i), (i % 3 != 0, "xl" if i % 2 else "standard"))
        assert (got.available, got.vehicle_class) == want


def test_bad_rows_are_refused_before_they_are_shared(feed: tuple[Any, RedisStreamFeed]
                                                     ) -> None:
    redis, pub = feed
    rows = rows_of(("1", 40.75, -73.98, True, "standard", NOW),
                   ("2", 91.0, -73.98, True, "standard", NOW),
                   ("3", 40.75, math.inf, True, "standard", NOW),
                   ("4", 40.75, -73.98, True, "standard", math.nan),
                   ("5", 40.76, -73.97, True, "standard", NOW))
    result = pub.publish(rows)
    assert result.applied == 2
    assert [(i, f) for i, f, _reason in result.rejected] == [(1, "lat"), (2, "lng"), (3, "ts")]
    assert "91.0" in result.rejected[0][2]
    (fields,) = entries(redis, pub.stream)
    assert decode_entry(fields)[0] == ["1", "5"]


def test_a_column_that_is_not_all_numbers_is_checked_row_by_row(
        feed: tuple[Any, RedisStreamFeed]) -> None:
    redis, pub = feed
    rows = rows_of(("1", 40.75, -73.98, True, "standard", NOW),
                   ("2", "40.75", -73.98, True, "standard", NOW))
    result = pub.publish(rows)
    assert (result.applied, [(i, f) for i, f, _ in result.rejected]) == (1, [(1, "lat")])
    with pytest.raises(ValueError, match="lat must be finite"):
        pub.publish(rows_of(("2", "40.75", -73.98, True, "standard", NOW)))
    assert len(entries(redis, pub.stream)) == 1


def test_an_entry_of_another_version_is_refused_not_misread(
        feed: tuple[Any, RedisStreamFeed]) -> None:
    redis, pub = feed
    redis.xadd(pub.stream, {"o": "old", "r": '[["1", 40.75, -73.98, 1, "standard", 1.0]]'})
    pub.publish(rows_of(("1", 40.75, -73.98, True, "standard", NOW)))
    old, new = entries(redis, pub.stream)
    with pytest.raises(ValueError, match="version"):
        decode_entry(old)
    torn = {**new, b"c": b"standard\nxl"}
    with pytest.raises(ValueError, match="different lengths"):
        decode_entry(torn)


def test_the_order_rule_on_redis_is_the_embedded_modes(feed: tuple[Any, RedisStreamFeed]
                                                      ) -> None:
    # `advance` decides which rows are older than their driver's last accepted time, across
    # processes in one Lua script: the same answers as the in-process feed's, for batches with
    # new drivers, older and newer rows, a driver twice in one batch and server-stamped rows.
    redis, _ = feed
    key = f"test:location-ts:{uuid.uuid4().hex}"
    shared = RedisStreamFeed(redis, "a", stream=f"test:unused:{uuid.uuid4().hex}",
                             last_ts_key=key)
    local = InProcessFeed(GeoIndex(backend="quadtree", ttl_s=60.0, clock=lambda: NOW))
    rnd = np.random.default_rng(3)
    drivers = [str(4_000_000 + i) for i in range(40)]
    try:
        for _ in range(30):
            n = int(rnd.integers(1, 60))
            ids = [drivers[i] for i in rnd.integers(0, len(drivers), n)]
            tss = NOW + rnd.integers(0, 40, n) + rnd.random(n).round(3)
            stamped = rnd.random(n) < 0.2
            got = shared.advance(ids, tss, stamped)
            want = local.advance(ids, tss, stamped)
            np.testing.assert_array_equal(got, want)
        assert {k.decode(): float(np.frombuffer(v)[0]) for k, v in redis.hgetall(key).items()
                } == local.last_ts
    finally:
        redis.delete(key)


class CountingRedis(redis_lib.Redis):
    """A client that records the commands it sends and the pipelines it runs."""

    sent: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.sent.append("pipeline")
        return super().pipeline(*args, **kwargs)


def _post_rows(ids: list[str], tss: list[float]) -> FeedRows:
    return rows_of(*((d, 40.75 + i * 1e-4, -73.98, True, "standard", t)
                     for i, (d, t) in enumerate(zip(ids, tss, strict=True))))


@pytest.fixture
def counted() -> Iterator[tuple[CountingRedis, RedisStreamFeed]]:
    """A feed on its own stream and last-times hash, through a client that counts commands."""
    client = CountingRedis.from_url(REDIS_URL)
    client.sent = []
    stream, key = f"test:locations:{uuid.uuid4().hex}", f"test:ts:{uuid.uuid4().hex}"
    yield client, RedisStreamFeed(client, "a", stream=stream, last_ts_key=key)
    client.delete(stream, key)


def test_a_batch_with_no_older_row_is_checked_and_added_in_one_round_trip(
        counted: tuple[CountingRedis, RedisStreamFeed]) -> None:
    client, feed = counted
    feed.post(_post_rows(["1"], [NOW]), np.zeros(1, np.bool_))  # loads the script
    client.sent.clear()
    prev, result = feed.post(_post_rows(["1", "2"], [NOW + 1, NOW]), np.zeros(2, np.bool_))
    assert client.sent == ["EVALSHA"]
    assert result.applied == 2 and result.rejected == []
    np.testing.assert_array_equal(prev, [NOW, np.nan])
    [_first, second] = entries(client, feed.stream)
    assert decode_entry(second)[0] == ["1", "2"]


def test_an_older_row_is_refused_and_the_rest_of_its_batch_still_added(
        counted: tuple[CountingRedis, RedisStreamFeed]) -> None:
    client, feed = counted
    feed.post(_post_rows(["1"], [NOW + 5]), np.zeros(1, np.bool_))
    prev, result = feed.post(_post_rows(["2", "1", "3"], [NOW, NOW + 1, NOW]),
                             np.zeros(3, np.bool_))
    assert result.applied == 2
    np.testing.assert_array_equal(prev, [np.nan, NOW + 5, np.nan])
    ids, _lats, _lngs, _avail, ts, _classes = decode_entry(entries(client, feed.stream)[-1])
    assert (ids, ts.tolist()) == (["2", "3"], [NOW, NOW])
    assert float(np.frombuffer(client.hget(feed.last_ts_key, "1"))[0]) == NOW + 5  # kept


def test_post_on_redis_answers_as_the_embedded_modes_post(feed: tuple[Any, RedisStreamFeed]
                                                          ) -> None:
    # The one-trip script and the two steps decide alike: the same previous times and the
    # same rows published, in the same order, for batches with older rows, a driver twice and
    # server-stamped rows.
    redis, shared = feed
    key = f"test:location-ts:{uuid.uuid4().hex}"
    shared.last_ts_key = key
    local = InProcessFeed(GeoIndex(backend="quadtree", ttl_s=10_000.0, clock=lambda: NOW))
    published: list[tuple[str, float]] = []
    publish = local.publish

    def recording(rows: FeedRows) -> Any:
        published.extend(zip(rows.ids, rows.ts.tolist(), strict=True))
        return publish(rows)

    local.publish = recording  # type: ignore[method-assign]
    rnd = np.random.default_rng(5)
    drivers = [str(5_000_000 + i) for i in range(30)]
    refused = 0
    try:
        for _ in range(25):
            n = int(rnd.integers(1, 40))
            ids = [drivers[i] for i in rnd.integers(0, len(drivers), n)]
            rows = _post_rows(ids, (NOW + rnd.integers(0, 40, n)).tolist())
            stamped = rnd.random(n) < 0.2
            got_prev, got = shared.post(rows, stamped)
            want_prev, want = local.post(rows, stamped)
            np.testing.assert_array_equal(got_prev, want_prev)
            assert got.applied == want.applied
            refused += int((rows.ts < want_prev).sum())
        on_redis = [(d, t) for f in entries(redis, shared.stream)
                    for d, t in zip(decode_entry(f)[0], decode_entry(f)[4].tolist(),
                                    strict=True)]
        assert on_redis == published
        assert refused > 0  # older rows came up: the script's other answer was taken too
    finally:
        redis.delete(key)
