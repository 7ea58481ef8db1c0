"""The driver channel: offers pushed to long-polls and WebSockets of one process.

Subscribers get a queue each; `publish` wakes every subscriber of that driver. Long-polls
subscribe *before* they read pending offers from the database, so an offer made between the
read and the wait is never missed.
"""

from __future__ import annotations

import queue
import threading
from collections import defaultdict
from typing import Any


class OfferChannel:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[queue.SimpleQueue[dict[str, Any]]]] = defaultdict(set)

    def subscribe(self, driver_id: str) -> queue.SimpleQueue[dict[str, Any]]:
        q: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._lock:
            self._subs[driver_id].add(q)
        return q

    def unsubscribe(self, driver_id: str, q: queue.SimpleQueue[dict[str, Any]]) -> None:
        with self._lock:
            subs = self._subs.get(driver_id)
            if subs is not None:
                subs.discard(q)
                if not subs:
                    del self._subs[driver_id]

    def publish(self, driver_id: str, message: dict[str, Any]) -> int:
        with self._lock:
            targets = list(self._subs.get(driver_id, ()))
        for q in targets:
            q.put(message)
        return len(targets)
