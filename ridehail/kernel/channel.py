"""Wake-ups by key within one process: `publish(key, message)` calls every callback subscribed
to that key, on the publisher's thread.

A callback must be quick and must not raise (it hands the message on: sets a threading event,
or schedules work on an event loop with `call_soon_threadsafe`). Messages are wake-ups, not
the truth: a reader re-reads what changed (pending offers, the trip) from the database, so a
lost message costs a delay, never a wrong answer.

The scaled mode relays messages between processes (`dispatch.cluster.RedisChannels`); the
subscribers of each process stay here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

Callback = Callable[[dict[str, Any]], None]

log = logging.getLogger(__name__)


class Channel:
    # Whether every message published anywhere reaches this process's subscribers: true in
    # one process (delivery is a call); a relay between processes can lose one while Redis
    # is away, so a reader that saw no wake-up must still read again.
    reliable = True

    def reread_after_wait(self, woken: bool) -> bool:
        """A reader read, then waited on this channel: whether what it read may have changed.
        Without a wake-up, only if a message can be lost on the way (not `reliable`)."""
        return woken or not self.reliable

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._subs: dict[str, list[Callback]] = {}
        self._every: list[Callback] = []  # called for every key

    def subscribe(self, key: str, callback: Callback) -> None:
        with self._lock:
            self._subs.setdefault(key, []).append(callback)

    def unsubscribe(self, key: str, callback: Callback) -> None:
        with self._lock:
            subs = self._subs.get(key)
            if subs is None:
                return
            try:
                subs.remove(callback)
            except ValueError:
                return
            if not subs:
                del self._subs[key]

    def subscribe_all(self, callback: Callback) -> None:
        """`callback` gets every message, whatever its key."""
        with self._lock:
            self._every.append(callback)

    def subscribers(self, key: str) -> int:
        return len(self._subs.get(key, ()))

    def publish(self, key: str, message: dict[str, Any]) -> int:
        """Wake this process's subscribers of `key`; the number woken."""
        return self.deliver(key, message)

    def deliver(self, key: str, message: dict[str, Any]) -> int:
        with self._lock:
            targets = [*self._subs.get(key, ()), *self._every]
        for callback in targets:
            try:
                callback(message)
            except Exception:  # one subscriber's failure must not silence the others
                log.exception("channel subscriber failed (channel %s, key %s)", self.name, key)
        return len(targets)


class Waiter:
    """A thread's one-shot wait on a channel key (the threaded long-poll): subscribe first,
    read, then wait, so a message published in between is not missed."""

    def __init__(self, channel: Channel, key: str) -> None:
        self.channel = channel
        self.key = key
        self.event = threading.Event()
        self._callback: Callback = lambda _message: self.event.set()

    def __enter__(self) -> Waiter:
        self.channel.subscribe(self.key, self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.channel.unsubscribe(self.key, self._callback)

    def wait(self, timeout_s: float) -> bool:
        return self.event.wait(timeout_s)
