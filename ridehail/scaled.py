"""The scaled mode's shared parts for one API process: the Redis location feed and its tailer,
then driver events, surge demand, completed rides (the live travel-time correction) and the
channels' wake-ups (a driver's offers, a trip's changes, revoked tokens), all four read by one
tailer, and Redis trip traces.

`build_engine` calls `scaled_parts` before it builds the engine and `start_scaled` once the
engine exists (the tailers apply entries to it). Tailers are positioned before the engine
restores its drivers from the database, so no change made in between is missed.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from dispatch.cluster import (
    DEMAND_STREAM,
    DRIVER_EVENTS_STREAM,
    OFFERS_CHANNEL,
    RIDES_STREAM,
    TRIPS_CHANNEL,
    WAKEUPS_STREAM,
    BatchedRedis,
    RedisChannels,
    RedisDemandEvents,
    RedisDriverEvents,
    RedisRideEvents,
    RedisTraces,
)
from dispatch.engine import Engine
from dispatch.feed import LOCATIONS_STREAM, RedisStreamFeed, StreamTailer, apply_location_entry
from dispatch.live_eta import LiveEta

from .kernel.channel import Channel
from .settings import Settings

REVOCATIONS_CHANNEL = "ridehail:revocations"


@dataclass
class ScaledParts:
    redis: Any
    feed: RedisStreamFeed
    events: RedisDriverEvents
    traces: RedisTraces
    channels: RedisChannels
    demand: RedisDemandEvents
    announcing: BatchedRedis
    rides: RedisRideEvents

    @property
    def offers(self) -> Channel:
        return self.channels.channel(OFFERS_CHANNEL)

    @property
    def trips(self) -> Channel:
        return self.channels.channel(TRIPS_CHANNEL)

    @property
    def revocations(self) -> Channel:
        return self.channels.channel(REVOCATIONS_CHANNEL)


class Stoppable:
    """Background parts stopped together (threads, timers, leases)."""

    def __init__(self, *parts: Any) -> None:
        self.parts = parts

    def stop(self) -> None:
        # Every part that can be told first is told at once: the tailers each block up to a
        # second in Redis, and stopped one after another a process's shutdown waited for the
        # sum of them.
        for p in self.parts:
            if hasattr(p, "request_stop"):
                p.request_stop()
        for p in self.parts:
            p.stop()


def scaled_parts(settings: Settings) -> ScaledParts:
    from dispatch.feed import redis_client

    assert settings.redis_url is not None
    redis = redis_client(settings.redis_url)
    # Who published an entry: a process skips its own driver events and wake-ups.
    origin = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    # Announcements after a commit share one round trip per use case (Engine's `announcing`).
    announcing = BatchedRedis(redis)
    parts = ScaledParts(redis, RedisStreamFeed(redis, origin),
                        RedisDriverEvents(announcing, origin), RedisTraces(redis),
                        RedisChannels(announcing, origin,
                                      (OFFERS_CHANNEL, TRIPS_CHANNEL, REVOCATIONS_CHANNEL)),
                        RedisDemandEvents(announcing, origin), announcing,
                        RedisRideEvents(announcing, origin))
    return parts


def start_scaled(parts: ScaledParts, engine: Engine) -> Any:
    """Start the tailers; returns something with stop()."""
    locations = StreamTailer(
        parts.redis, LOCATIONS_STREAM,
        lambda f: None if apply_location_entry(engine.index, f, engine.drivers)
        else None,
        name="location-tailer")
    # Driver events, surge demand and completed rides: one thread, one blocking XREAD. A trip
    # request announces its demand and its driver's new status together; read by a thread per
    # stream, that woke two threads in every other process (CPU by thread under
    # bench/cluster.py's 3 processes: the event and demand tailers were 1.2 ms of a
    # nearby/request/cancel cycle's 8.7 ms).
    events = StreamTailer(parts.redis, DRIVER_EVENTS_STREAM,
                          parts.events.handler(engine.apply_driver_event), name="event-tailer")
    # Surge's window of demand, from every process (a new one reads the window's worth).
    window_s = engine.surge.window_s if engine.surge is not None else 0.0
    events.also(DEMAND_STREAM, parts.demand.handler(engine.supply.record_remote),
                since=time.time() - window_s)
    if isinstance(engine.eta, LiveEta):
        # The rides of the last few half-lives (older ones weigh under 1/16 by now).
        correction = engine.eta.correction
        events.also(RIDES_STREAM, parts.rides.handler(correction.observe),
                    since=time.time() - 4 * math.log(2.0) / correction.rate)
    # The channels' wake-ups (an offer for a driver held here, a trip's change, a revoked
    # token) come with the use case's driver event.
    events.also(WAKEUPS_STREAM, parts.channels.handler())
    tailers = (events, locations)
    for tailer in tailers:
        tailer.start()
    return Stoppable(*tailers)
