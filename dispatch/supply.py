"""Supply and demand per surge cell: the available drivers the index shows, the requests
surge has counted, and the multiplier a new trip locks in."""

from __future__ import annotations

from decimal import Decimal

import h3

from geoindex import GeoIndex
from ridehail.kernel.clock import Clock
from trips.surge import SurgePricer

from .ports import DemandEvents


class Supply:
    def __init__(self, index: GeoIndex, clock: Clock, pricer: SurgePricer | None, *,
                 resolution: int, refresh_s: float, demand: DemandEvents | None = None) -> None:
        self.index = index
        self.clock = clock
        self.pricer = pricer
        self.demand = demand
        self.resolution = resolution
        self.refresh_s = refresh_s
        self._counts: tuple[float, dict[str, int]] = (-1e18, {})
        if pricer is not None:
            index.keep_supply(resolution)  # counted per cell at publish time, not per request

    def counts(self) -> dict[str, int]:
        """Available drivers per surge cell, as the index counted them at its last publish
        (`GeoIndex.keep_supply`), read at most every `refresh_s`."""
        at, cached = self._counts
        now = self.clock.now()
        if now - at < self.refresh_s:
            return cached
        snap = self.index.snapshot()
        kept = snap.available_per_cell(self.resolution)
        if kept is not None:
            self._counts = (now, kept)
            return kept
        # A snapshot published before the index kept them: one pass over its drivers.
        fresh: dict[str, int] = {}
        res = self.resolution
        for d in snap.drivers(now=now):
            if d.available:
                cell = h3.latlng_to_cell(d.lat, d.lng, res)
                fresh[cell] = fresh.get(cell, 0) + 1
        self._counts = (now, fresh)
        return fresh

    def surge_at(self, lat: float, lng: float) -> Decimal:
        if self.pricer is None:
            return Decimal(1)
        return self.pricer.multiplier(lat, lng, self.counts())

    def record_request(self, lat: float, lng: float, now: float) -> None:
        """An accepted request: demand for surge (refused ones never count), here and, in the
        scaled mode, in the other processes."""
        if self.pricer is not None:
            self.pricer.record_request(lat, lng, now)
            if self.demand is not None:
                self.demand.announce(lat, lng, now)

    def record_remote(self, lat: float, lng: float, ts: float) -> None:
        """A request another process took (its demand announcement)."""
        if self.pricer is not None:
            self.pricer.record_request(lat, lng, ts)
