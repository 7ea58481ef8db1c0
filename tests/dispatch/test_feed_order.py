"""The embedded feed under threads: `InProcessFeed.advance` is atomic per batch, as the Redis
feed's script is across processes. Request threads post new drivers at once, and each gets a
row of its own for its last accepted time (without the feed's lock two drivers shared a row,
one's time lost, in every run of three rounds)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from dispatch.feed import InProcessFeed
from geoindex import GeoIndex


@pytest.fixture
def switchy() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, so a race shows."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def feed() -> InProcessFeed:
    return InProcessFeed(GeoIndex(backend="quadtree", ttl_s=60.0, clock=lambda: 1e9))


@pytest.mark.usefixtures("switchy")
@pytest.mark.parametrize("round_", range(3))
def test_new_drivers_from_many_threads_each_get_their_own_time(round_: int) -> None:
    f = feed()
    threads, per = 8, 400
    start = threading.Barrier(threads)

    def post(t: int) -> None:
        start.wait()
        for i in range(per):  # one new driver a batch: the row assignment is what races
            f.advance([f"t{t}-{i}"], np.array([float(t * per + i)]), np.zeros(1, np.bool_))

    ws = [threading.Thread(target=post, args=(t,)) for t in range(threads)]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    assert f.last_ts == {f"t{t}-{i}": float(t * per + i) for t in range(threads)
                         for i in range(per)}

