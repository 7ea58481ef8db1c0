"""Work a request's thread does after its answer is handed back: the connection edge answers
first, then runs what the use case deferred (its announcements to other processes: driver
events, surge demand, wake-ups), so the caller does not wait for a round trip whose result it
never sees.

    later = []
    with answering(later):   # the edge, around the app's call
        ...                  # a use case calls after_answer(send)
    ...hand the answer back...
    run_all(later)

Outside `answering` (the simulator, the CLI, tests calling the engine) `after_answer` returns
False and the caller runs the work itself, at once.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

from ridehail.kernel.logging import get_logger

log = get_logger(__name__)

_LATER: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "ridehail_after_answer", default=None)


def after_answer(work: Callable[[], None]) -> bool:
    """Queue `work` to run once this request's answer is handed back; False (nothing queued)
    outside a request being answered."""
    later = _LATER.get()
    if later is None:
        return False
    later.append(work)
    return True


@contextlib.contextmanager
def answering(later: list[Callable[[], None]]) -> Iterator[None]:
    """Collect into `later` what the code inside defers (`after_answer`), in order."""
    token = _LATER.set(later)
    try:
        yield
    finally:
        _LATER.reset(token)


def run_all(later: list[Callable[[], None]]) -> None:
    """Run the deferred work in order; one that fails is logged and the rest still run."""
    for work in later:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - the answer is gone; log and go on
            log.warning("work deferred after an answer failed", error=repr(exc))
