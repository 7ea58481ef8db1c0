"""State the API processes of one city share in the scaled mode, with in-process twins for the
embedded mode:

- driver events: each status change a process commits (online, offered, en route, on trip,
  available, offline) is announced on the Redis stream `ridehail:driver-events`; every other
  process applies it to its directory and to its index's availability flag;
- surge demand: each accepted trip request is announced on `ridehail:demand`, and every process
  counts the others' in its surge pricer;
- completed rides: each ride a process completes is announced on `ridehail:rides`, and every
  process teaches it to its live travel-time correction (dispatch/live_eta.py), so each one
  learns from the whole city's rides and a driver's or rider's share is counted across all
  processes, not once per process;
- trip traces: the on-trip driver's locations, a Redis list per trip (`RPUSH`/`LRANGE`, with
  an expiry), so whichever process completes the trip prices the whole trace;
- the channels: an offer made by one process wakes the long-polls and WebSockets of its driver
  held by any process, a trip's change wakes its rider's event streams, and a revoked token
  closes its connections everywhere, through the Redis stream `ridehail:wake-ups`
  (`RedisChannels`), read with the driver events.

PostgreSQL stays the truth (offers, deadlines, claims are compare-and-set rows there); these
are caches and wake-ups. Announcing is best-effort: a lost event is repaired by the periodic
reconcile of the directory against the database (`Engine.reconcile`).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ridehail.kernel.channel import Channel
from ridehail.kernel.deferred import after_answer
from ridehail.kernel.logging import get_logger

from .feed import decode

log = get_logger(__name__)

DRIVER_EVENTS_STREAM = "ridehail:driver-events"
DEMAND_STREAM = "ridehail:demand"
RIDES_STREAM = "ridehail:rides"
OFFERS_CHANNEL = "ridehail:offers"
TRIPS_CHANNEL = "ridehail:trips"
WAKEUPS_STREAM = "ridehail:wake-ups"
TRACE_KEY = "ridehail:trace:{}"
TRACE_TTL_S = 6 * 3600  # longer than any trip; a trace nobody completes goes away by itself



# --- one round trip per use case ------------------------------------------------------------

class BatchedRedis:
    """The Redis client the announcers write through (driver events, surge demand, completed
    rides, the channels' wake-ups). Inside `batch()` a thread's commands are queued and go to
    Redis in one round trip when the batch ends: a trip request announces three things after its
    commit (its demand, the driver's new status, the offer's wake-up) and waits for Redis
    once. Outside a batch (other threads, other use cases) every command goes at once. A batch
    that ends while the edge answers a request goes once the answer is on its way
    (`ridehail.kernel.deferred`): the caller does not wait for that round trip (in the
    3-process closed loop, three interleaved 20 s runs each way, a trip request's p50 went
    25.0/23.8/23.4 -> 23.4/22.1/23.3 ms; its server-side Redis wait had been 1.8 ms in a
    median request).

    A queued command's answer is not seen: only announcements go through here, and they are
    best effort (a failed batch is logged, as each announcer logs its own failure; the
    reconcile repairs driver events, wake-ups are re-read)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        pipe = getattr(self._local, "pipe", None)
        return getattr(self.redis if pipe is None else pipe, name)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        if getattr(self._local, "pipe", None) is not None:
            yield  # nested: the outer batch sends
            return
        pipe = self.redis.pipeline(transaction=False)
        self._local.pipe = pipe
        try:
            yield
        finally:
            self._local.pipe = None
            if len(pipe) and not after_answer(lambda: _send(pipe)):
                _send(pipe)


def _send(pipe: Any) -> None:
    try:
        answers = pipe.execute(raise_on_error=False)
    except Exception as exc:  # noqa: BLE001 - what was committed stays committed
        log.warning("announcements not sent", error=repr(exc))
    else:
        for answer in answers:
            if isinstance(answer, Exception):
                log.warning("announcement refused", error=repr(answer))


# --- driver events ---------------------------------------------------------------------------

class LocalEvents:
    """Embedded mode: one process, nobody to tell."""

    def announce(self, driver_id: str, status: str, vehicle_class: str | None,
                 trip_id: str | None, version: int) -> None:
        return None


class StreamAnnouncer:
    """What the announcers on Redis streams share: each entry carries the announcing process's
    `origin`, so that process's own tailer skips it (it applied the change before announcing),
    and an announcement is best effort: what was committed stays committed (the reconcile
    repairs driver events; surge demand and the travel-time correction are estimates)."""

    STREAM = ""
    MAXLEN = 100_000
    WHAT = "entry"  # what a failure log line says was not announced

    def __init__(self, redis: Any, origin: str, *, stream: str | None = None,
                 maxlen: int | None = None) -> None:
        self.redis = redis
        self.origin = origin
        self.stream = stream or self.STREAM
        self.maxlen = maxlen or self.MAXLEN

    def _add(self, fields: dict[str, str], **context: Any) -> None:
        try:
            self.redis.xadd(self.stream, {"o": self.origin, **fields}, maxlen=self.maxlen,
                            approximate=True)
        except Exception as exc:  # noqa: BLE001 - best effort, see the class docstring
            log.warning(f"{self.WHAT} not announced", error=repr(exc), **context)

    def _theirs(self, fields: dict[bytes, bytes]) -> bool:
        return decode(fields[b"o"]) != self.origin


class RedisDriverEvents(StreamAnnouncer):
    STREAM = DRIVER_EVENTS_STREAM
    WHAT = "driver event"

    def announce(self, driver_id: str, status: str, vehicle_class: str | None,
                 trip_id: str | None, version: int) -> None:
        self._add({"d": driver_id, "s": status, "c": vehicle_class or "", "t": trip_id or "",
                   "v": str(version)}, driver_id=driver_id)

    def handler(self, apply: Callable[[str, str, str | None, str | None, int | None], None]
                ) -> Callable[[dict[bytes, bytes]], None]:
        """The tailer callback: apply the events other processes announced. The row version
        orders them (`DriverDirectory._mirror`); an entry without one (a process of an older
        release) applies as given."""
        def handle(fields: dict[bytes, bytes]) -> None:
            if self._theirs(fields):
                version = fields.get(b"v")
                apply(decode(fields[b"d"]), decode(fields[b"s"]),
                      decode(fields[b"c"]) or None, decode(fields[b"t"]) or None,
                      None if version is None else int(version))
        return handle


# --- surge demand ----------------------------------------------------------------------------

class RedisDemandEvents(StreamAnnouncer):
    """Scaled mode: each accepted request goes onto `ridehail:demand`, which every process tails
    into its surge pricer, so surge sees the whole city's demand whichever process took the
    request (each used to see only its own share). A new process reads the window's worth."""

    STREAM = DEMAND_STREAM
    MAXLEN = 200_000
    WHAT = "surge demand"

    def announce(self, lat: float, lng: float, ts: float) -> None:
        self._add({"la": repr(lat), "ln": repr(lng), "t": repr(ts)})

    def handler(self, apply: Callable[[float, float, float], None]
                ) -> Callable[[dict[bytes, bytes]], None]:
        """The tailer callback: count the requests other processes took."""
        def handle(fields: dict[bytes, bytes]) -> None:
            if self._theirs(fields):
                apply(float(fields[b"la"]), float(fields[b"ln"]), float(fields[b"t"]))
        return handle


# --- completed rides (the live travel-time correction) --------------------------------------

class RedisRideEvents(StreamAnnouncer):
    """Scaled mode: each completed ride the live correction learned from goes onto
    `ridehail:rides` (the model's time, the ride's, when it ended, its parties), which every
    process tails into its own correction. A new process reads the last few half-lives."""

    STREAM = RIDES_STREAM
    MAXLEN = 200_000
    WHAT = "completed ride"

    def announce(self, predicted_s: float, actual_s: float, at: float,
                 parties: tuple[str, ...]) -> None:
        self._add({"p": repr(predicted_s), "a": repr(actual_s), "t": repr(at),
                   "w": json.dumps(parties)})

    def handler(self, apply: Callable[[float, float, float, tuple[str, ...]], None]
                ) -> Callable[[dict[bytes, bytes]], None]:
        """The tailer callback: learn the rides other processes completed."""
        def handle(fields: dict[bytes, bytes]) -> None:
            if not self._theirs(fields):
                return
            parties = json.loads(fields[b"w"])
            if not (isinstance(parties, list) and all(isinstance(x, str) for x in parties)):
                raise ValueError(f"ride entry: parties must be a list of strings: {parties!r}")
            apply(float(fields[b"p"]), float(fields[b"a"]), float(fields[b"t"]),
                  tuple(parties))
        return handle


# --- trip traces -----------------------------------------------------------------------------

class RedisTraces:
    """Scaled mode: a Redis list per trip, so whichever process completes the trip prices the
    whole trace."""

    def __init__(self, redis: Any, ttl_s: int = TRACE_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    def add(self, trip_ids: list[str], points: NDArray[np.float64]) -> None:
        if not trip_ids:
            return
        by_trip: dict[str, list[str]] = {}
        for trip_id, (t, la, ln) in zip(trip_ids, points.tolist(), strict=True):
            by_trip.setdefault(trip_id, []).append(f"{t!r},{la!r},{ln!r}")
        pipe = self.redis.pipeline(transaction=False)
        for trip_id, items in by_trip.items():
            key = TRACE_KEY.format(trip_id)
            pipe.rpush(key, *items)
            pipe.expire(key, self.ttl_s)
        pipe.execute()

    def points(self, trip_id: str) -> NDArray[np.float64]:
        # Raises when Redis is down: completing then fails cleanly (503) before its commit,
        # rather than pricing a trip on a partial trace.
        raw = self.redis.lrange(TRACE_KEY.format(trip_id), 0, -1)
        out = np.empty((len(raw), 3))
        for i, item in enumerate(raw):
            t, la, ln = decode(item).split(",")
            out[i] = float(t), float(la), float(ln)
        return out

    def drop(self, trip_id: str) -> None:
        try:
            self.redis.delete(TRACE_KEY.format(trip_id))
        except Exception as exc:  # noqa: BLE001 - after the commit; the key expires anyway
            log.warning("trace not deleted", trip_id=trip_id, error=repr(exc))


# --- channels ----------------------------------------------------------------------------

class RedisChannels(StreamAnnouncer):
    """The scaled mode's relay for the in-process channels (`ridehail.kernel.channel`): a
    message published in one process wakes the subscribers of every process, through the Redis
    stream `ridehail:wake-ups`, which each process reads on its driver events' tailer
    (`handler`).

    Local subscribers are woken directly; the message then goes onto the stream, in the same
    round trip as the use case's other announcements, and each other process delivers it to
    its own subscribers. On the tailer that reads the driver events, a trip request's wake-up
    arrives with its driver's new status: the pub/sub listener this replaces was a thread of
    its own woken for every message of every process (0.44-0.52 ms of a nearby/request/cancel
    cycle's CPU under bench/cluster.py's 3 processes). Messages are wake-ups (readers re-read
    the database), so one lost while Redis is away costs at most a reader's timeout."""

    STREAM = WAKEUPS_STREAM
    MAXLEN = 10_000  # wake-ups are read within milliseconds; a reconnecting tailer resumes
    WHAT = "wake-up"

    def __init__(self, redis: Any, origin: str, names: tuple[str, ...], *,
                 stream: str | None = None, maxlen: int | None = None) -> None:
        super().__init__(redis, origin, stream=stream, maxlen=maxlen)
        self.channels: dict[str, Channel] = {name: _RelayedChannel(name, self)
                                             for name in names}

    def channel(self, name: str) -> Channel:
        """The channel `name`."""
        return self.channels[name]

    def relay(self, name: str, key: str, message: dict[str, Any]) -> None:
        # Best effort (`_add`): the change is committed, and readers re-read.
        self._add({"n": name, "k": key, "m": json.dumps(message, default=str)},
                  channel=name, key=key)

    def handler(self) -> Callable[[dict[bytes, bytes]], None]:
        """The tailer callback: deliver the wake-ups other processes relayed."""
        def handle(fields: dict[bytes, bytes]) -> None:
            channel = self.channels.get(decode(fields[b"n"])) if self._theirs(fields) else None
            if channel is not None:
                channel.deliver(decode(fields[b"k"]), json.loads(fields[b"m"]))
        return handle


class _RelayedChannel(Channel):
    reliable = False  # a message relayed while Redis is away is lost

    def __init__(self, name: str, relay: RedisChannels) -> None:
        super().__init__(name)
        self._relay = relay

    def publish(self, key: str, message: dict[str, Any]) -> int:
        n = self.deliver(key, message)
        self._relay.relay(self.name, key, message)
        return n
