"""Leases a distinct id-generator worker id per process from Redis (the scaled mode).

Ids embed 10 bits of worker id; two live processes with the same one could mint the same id
in the same millisecond. `INCR` picks a starting point, `SET NX EX` claims the first free id
from there, and a daemon thread renews the lease; a process that dies frees its id when the
lease expires (after `ttl_s`), long enough that no clock-skewed twin overlaps it.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from .kernel.ids import MAX_WORKER_ID
from .kernel.logging import get_logger

log = get_logger(__name__)

SEQ_KEY = "ridehail:worker-id:seq"
LEASE_KEY = "ridehail:worker-id:{}"


class WorkerIdsExhausted(RuntimeError):
    pass


class WorkerIdLease:
    def __init__(self, redis: Any, *, ttl_s: int = 60) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.token = uuid.uuid4().hex
        self.worker_id = self._claim()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, daemon=True, name="worker-id-lease")

    def _claim(self) -> int:
        start = int(self.redis.incr(SEQ_KEY))
        for i in range(MAX_WORKER_ID + 1):
            wid = (start + i) & MAX_WORKER_ID
            if self.redis.set(LEASE_KEY.format(wid), self.token, nx=True, ex=self.ttl_s):
                return wid
        raise WorkerIdsExhausted("all 1024 worker ids are leased")

    def start(self) -> WorkerIdLease:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        try:  # free the id only if it is still ours
            key = LEASE_KEY.format(self.worker_id)
            if self.redis.get(key) == self.token.encode():
                self.redis.delete(key)
        except Exception:  # noqa: BLE001, S110 - it expires by itself
            pass

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.redis.set(LEASE_KEY.format(self.worker_id), self.token, ex=self.ttl_s)
            except Exception as exc:  # noqa: BLE001 - Redis down: keep the id, retry
                log.warning("worker id lease not renewed", worker_id=self.worker_id,
                            error=repr(exc))
