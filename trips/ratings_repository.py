"""Repositories for ratings and rating aggregates (SQL and memory)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from ridehail.kernel.errors import Conflict
from ridehail.kernel.routing import is_id
from ridehail.kernel.units import MemoryStore, UndoLog
from ridehail.kernel.versioned import MemoryVersioned, RowCodec, SqlVersioned

from .model import Rating, RatingAggregate
from .tables import rating_aggregates, ratings

RATING_CODEC: RowCodec[Rating] = RowCodec(
    Rating, id_columns=("trip_id", "rater_id", "ratee_id"), decoders={"applied": bool})
AGG_CODEC: RowCodec[RatingAggregate] = RowCodec(RatingAggregate, id_columns=("account_id",))


class SqlRatingRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, rating: Rating) -> None:
        row = RATING_CODEC.to_row(rating)
        row["applied"] = int(rating.applied)
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(ratings).values(**row))
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    def get(self, trip_id: str, role: str) -> Rating | None:
        row = self.conn.execute(select(ratings).where(
            ratings.c.trip_id == int(trip_id), ratings.c.rater_role == role)).first()
        return None if row is None else RATING_CODEC.from_row(row)

    def for_trip(self, trip_id: str) -> list[Rating]:
        rows = self.conn.execute(select(ratings).where(ratings.c.trip_id == int(trip_id)))
        return [RATING_CODEC.from_row(r) for r in rows]

    def mark_applied(self, trip_id: str, role: str) -> None:
        result = self.conn.execute(update(ratings).where(
            ratings.c.trip_id == int(trip_id), ratings.c.rater_role == role,
            ratings.c.applied == 0).values(applied=1))
        if result.rowcount != 1:
            raise Conflict(f"rating {trip_id}/{role} applied concurrently")

    def unapplied(self, cutoff: float, limit: int = 500) -> list[tuple[str, str]]:
        rows = self.conn.execute(select(ratings.c.trip_id, ratings.c.rater_role).where(
            ratings.c.applied == 0, ratings.c.created_at < cutoff).limit(limit))
        return [(str(r[0]), str(r[1])) for r in rows]


class MemoryRatingRepository:
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        self.rows: dict[tuple[str, str], Rating] = store.table("ratings")
        self.undo = undo

    def add(self, rating: Rating) -> None:
        key = (rating.trip_id, rating.rater_role)
        if key in self.rows:
            raise Conflict(f"rating {key} exists")
        self.undo.set(self.rows, key, dataclasses.replace(rating))

    def get(self, trip_id: str, role: str) -> Rating | None:
        r = self.rows.get((trip_id, role))
        return None if r is None else dataclasses.replace(r)

    def for_trip(self, trip_id: str) -> list[Rating]:
        return [dataclasses.replace(r) for (t, _), r in self.rows.items() if t == trip_id]

    def mark_applied(self, trip_id: str, role: str) -> None:
        r = self.rows.get((trip_id, role))
        if r is None or r.applied:
            raise Conflict(f"rating {trip_id}/{role} applied concurrently")
        self.undo.set(self.rows, (trip_id, role), dataclasses.replace(r, applied=True))

    def unapplied(self, cutoff: float, limit: int = 500) -> list[tuple[str, str]]:
        return [k for k, r in self.rows.items() if not r.applied and r.created_at < cutoff
                ][:limit]


class SqlRatingAggregateRepository(SqlVersioned[RatingAggregate]):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, rating_aggregates, AGG_CODEC, key="account_id")

    def add(self, agg: RatingAggregate) -> None:
        self.insert(agg)

    def many(self, account_ids: list[str]) -> list[RatingAggregate]:
        ids = [int(a) for a in account_ids if is_id(a)]
        return self.find(rating_aggregates.c.account_id.in_(ids)) if ids else []


class MemoryRatingAggregateRepository(MemoryVersioned[RatingAggregate]):
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        super().__init__(store, undo, "rating_aggregates", key="account_id")

    def add(self, agg: RatingAggregate) -> None:
        self.insert(agg)

    def many(self, account_ids: list[str]) -> list[RatingAggregate]:
        return [a for a in (self.get(i) for i in account_ids) if a is not None]

