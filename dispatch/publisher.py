"""Publishes the live index on a timer: readers query the last snapshot, never the writer."""

from __future__ import annotations

import threading

from geoindex import GeoIndex
from ridehail.kernel.logging import get_logger

log = get_logger(__name__)


class IndexPublisher:
    def __init__(self, index: GeoIndex, interval_s: float) -> None:
        self.index = index
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="index-publisher")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.index.publish()
            except Exception:  # noqa: BLE001 - keep publishing; the error is logged
                log.exception("index publish failed")
