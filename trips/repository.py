"""Trip repositories: SQL (the API) and memory (unit tests, the simulator's engine mode)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, Connection, bindparam, cast, exists, select
from sqlalchemy.dialects import postgresql, sqlite

from ridehail.kernel.errors import Conflict
from ridehail.kernel.units import MemoryStore, UndoLog
from ridehail.kernel.versioned import MemoryVersioned, RowCodec, SqlVersioned

from .model import LIVE, OPEN, Trip, TripState
from .payments import BLOCKING
from .tables import LIVE_STATES, OPEN_STATES, payments, trips

CODEC: RowCodec[Trip] = RowCodec(
    Trip, id_columns=("id", "rider_id", "driver_id"), decoders={"state": TripState}
)


def _unique(trip: Trip) -> Iterable[tuple[str, Any]]:
    if trip.state in LIVE and trip.driver_id is not None:
        yield ("live_driver", trip.driver_id)
    if trip.state in OPEN:
        yield ("open_rider", trip.rider_id)


_OPEN: dict[tuple[str, str], Any] = {}


def open_statement(dialect: str, prefix: str = "") -> Any:
    """`INSERT INTO trips SELECT <the row> WHERE NOT EXISTS (<a blocking payment of its
    rider>) ON CONFLICT DO NOTHING RETURNING id`, built once per dialect. On PostgreSQL the
    row's values are cast to their columns' types (an untyped parameter in a SELECT list is
    text there); SQLite takes them as they are. Its parameters are the trip's row
    (`CODEC.to_row`), their names prefixed by `prefix`: dispatch's PostgreSQL claim of a new
    trip's driver embeds it (`open_and_claim_first`), next to an UPDATE, which would take a
    parameter named after one of its columns as a value to set."""
    stmt = _OPEN.get((dialect, prefix))
    if stmt is None:
        def value(column: Column[Any]) -> Any:
            param = bindparam(prefix + column.name, type_=column.type)
            return cast(param, column.type) if dialect == "postgresql" else param

        columns = [c for c in trips.c if c.name in CODEC.fields]
        blocked = exists().where(payments.c.rider_id == bindparam(prefix + "rider_id"),
                                 payments.c.state == BLOCKING)
        row = select(*(value(c) for c in columns)).where(~blocked)
        module = postgresql if dialect == "postgresql" else sqlite  # the two we run on
        stmt = _OPEN[(dialect, prefix)] = (module.insert(trips)
                                           .from_select([c.name for c in columns], row)
                                           .on_conflict_do_nothing().returning(trips.c.id))
    return stmt


class SqlTripRepository(SqlVersioned[Trip]):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, trips, CODEC)

    def add(self, trip: Trip) -> None:
        self.insert(trip)

    def open(self, trip: Trip) -> bool:
        stmt = open_statement(self.conn.dialect.name)
        return self.conn.execute(stmt, self.codec.to_row(trip)).first() is not None

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
        self.payments = store.table("payments")

    def add(self, trip: Trip) -> None:
        self.insert(trip)

    def open(self, trip: Trip) -> bool:
        if any(p.rider_id == trip.rider_id and p.state == BLOCKING
               for p in self.payments.values()):
            return False
        try:
            self.insert(trip)
        except Conflict:
            return False
        return True

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

