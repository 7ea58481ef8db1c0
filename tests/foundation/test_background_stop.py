"""A scaled process's background parts stop together: each Redis tailer blocks up to a second
in Redis, so all of them are told to end before any is waited for (stopped one by one, a
shutdown waited for the sum of their waits)."""

from __future__ import annotations

from dispatch.feed import StreamTailer
from ridehail.scaled import Stoppable


class Part:
    def __init__(self, name: str, log: list[str], *, tellable: bool = True) -> None:
        self.name, self.log = name, log
        if tellable:
            self.request_stop = lambda: log.append(f"tell {name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


def test_every_part_is_told_before_any_is_waited_for() -> None:
    log: list[str] = []
    Stoppable(Part("a", log), Part("b", log, tellable=False), Part("c", log)).stop()
    assert log == ["tell a", "tell c", "stop a", "stop b", "stop c"]


def test_the_redis_threads_can_be_told_without_waiting() -> None:
    """The tailers offer the telling half of their stop (no Redis needed: not started)."""
    tailer = StreamTailer(None, "s", lambda _f: None, name="t")
    tailer.request_stop()
    assert tailer._stop.is_set()
    tailer.stop()  # never started: nothing to wait for
