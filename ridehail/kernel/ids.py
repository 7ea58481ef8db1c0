"""64-bit time-ordered ids: 41 bits of milliseconds since 2024-01-01, 10 bits of worker id,
12 bits of sequence. No database round trip; unique across threads, and across processes that
have distinct worker ids; ids sort by creation time (to the millisecond, then by sequence).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER_ID = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


class IdGenerator:
    def __init__(self, worker_id: int, clock_ms: Callable[[], int] | None = None) -> None:
        if not 0 <= worker_id <= MAX_WORKER_ID:
            raise ValueError(f"worker_id: must be in [0, {MAX_WORKER_ID}], got {worker_id}")
        self.worker_id = worker_id
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._last_ms = -1
        self._sequence = 0

    def next_int(self) -> int:
        with self._lock:
            now = self._clock_ms() - EPOCH_MS
            # A clock that steps back must not reuse ids: stay on the last millisecond.
            now = max(now, self._last_ms)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:
                    while now <= self._last_ms:
                        now = max(self._clock_ms() - EPOCH_MS, self._last_ms)
                        if now == self._last_ms:
                            time.sleep(0.0001)
            else:
                self._sequence = 0
            self._last_ms = now
            return (now << (WORKER_BITS + SEQUENCE_BITS)) | (
                self.worker_id << SEQUENCE_BITS
            ) | self._sequence

    def new_id(self) -> str:
        return str(self.next_int())


def timestamp_ms(id_: int | str) -> int:
    """The creation time (Unix milliseconds) encoded in an id."""
    return (int(id_) >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS


def worker_of(id_: int | str) -> int:
    return (int(id_) >> SEQUENCE_BITS) & MAX_WORKER_ID


_generator: IdGenerator | None = None
_configured_worker: int | None = None


def configure(worker_id: int | None) -> None:
    """Set this process's worker id (None: derived from the pid, see `_default_worker`)."""
    global _generator, _configured_worker
    _configured_worker = worker_id
    _generator = IdGenerator(worker_id if worker_id is not None else _default_worker())


def _default_worker() -> int:
    # Live pids on one host are distinct; folding them into 10 bits can collide, which is why
    # the scaled mode sets RIDEHAIL_WORKER_ID (or leases one from Redis) per process.
    return os.getpid() & MAX_WORKER_ID


def _after_fork() -> None:
    # A forked child must not continue the parent's sequence under the same worker id.
    global _generator
    if _generator is not None and _configured_worker is None:
        _generator = IdGenerator(_default_worker())


os.register_at_fork(after_in_child=_after_fork)


def new_id() -> str:
    global _generator
    if _generator is None:
        configure(_configured_worker)
    assert _generator is not None
    return _generator.new_id()
