"""Trip repositories: SQL (the API) and memory (unit tests, the simulator's engine mode)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from ridehail.kernel.units import MemoryStore, UndoLog
from ridehail.kernel.versioned import MemoryVersioned, RowCodec, SqlVersioned

from .model import LIVE, OPEN, Trip, TripState
from .tables import LIVE_STATES, OPEN_STATES, trips

CODEC: RowCodec[Trip] = RowCodec(
    Trip, id_columns=("id", "rider_id", "driver_id"), decoders={"state": TripState}
)


def _unique(trip: Trip) -> Iterable[tuple[str, Any]]:
    if trip.state in LIVE and trip.driver_id is not None:
        yield ("live_driver", trip.driver_id)
    if trip.state in OPEN:
        yield ("open_rider", trip.rider_id)


class SqlTripRepository(SqlVersioned[Trip]):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, trips, CODEC)

    def add(self, trip: Trip) -> None:
        self.insert(trip)

    def may_break_unique(self, trip: Trip) -> bool:
        # Both unique rules are partial indexes over open states (a driver's live trip, a
        # rider's open trip): a trip that is not open any more (cancelled, completed,
        # no_driver_found) is in neither, and is written back without a savepoint (two
        # round trips of every cancel and completion).
        return trip.state in OPEN

    def open_for_rider(self, rider_id: str) -> Trip | None:
        found = self.find(trips.c.rider_id == int(rider_id), trips.c.state.in_(OPEN_STATES))
        return found[0] if found else None

    def live_for_driver(self, driver_id: str) -> Trip | None:
        found = self.find(trips.c.driver_id == int(driver_id), trips.c.state.in_(LIVE_STATES))
        return found[0] if found else None

    def for_rider(self, rider_id: str, limit: int = 50) -> list[Trip]:
        return self.find(trips.c.rider_id == int(rider_id),
                         order_by=trips.c.requested_at.desc(), limit=limit)

    def for_driver(self, driver_id: str, limit: int = 50) -> list[Trip]:
        return self.find(trips.c.driver_id == int(driver_id),
                         order_by=trips.c.requested_at.desc(), limit=limit)

    def in_states(self, states: Iterable[str], limit: int = 1000) -> list[Trip]:
        return self.find(trips.c.state.in_(list(states)), limit=limit)


class MemoryTripRepository(MemoryVersioned[Trip]):
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        super().__init__(store, undo, "trips", unique=_unique)

    def add(self, trip: Trip) -> None:
        self.insert(trip)

    def open_for_rider(self, rider_id: str) -> Trip | None:
        return self.lookup("open_rider", rider_id)

    def live_for_driver(self, driver_id: str) -> Trip | None:
        return self.lookup("live_driver", driver_id)

    def for_rider(self, rider_id: str, limit: int = 50) -> list[Trip]:
        mine = [t for t in self.values() if t.rider_id == rider_id]
        mine.sort(key=lambda t: t.requested_at, reverse=True)
        return [self.get(t.id) for t in mine[:limit]]  # type: ignore[misc]

    def for_driver(self, driver_id: str, limit: int = 50) -> list[Trip]:
        mine = [t for t in self.values() if t.driver_id == driver_id]
        mine.sort(key=lambda t: t.requested_at, reverse=True)
        return [self.get(t.id) for t in mine[:limit]]  # type: ignore[misc]

    def in_states(self, states: Iterable[str], limit: int = 1000) -> list[Trip]:
        wanted = {TripState(s) for s in states}
        return [t for t in (self.get(k) for k in list(self.rows))
                if t is not None and t.state in wanted][:limit]

