"""SQLAlchemy Core mapping of driver states, offers and dispatch records."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table, text

from ridehail.kernel.db import Base

driver_states = Table(
    "driver_states",
    Base.metadata,
    Column("driver_id", BigInteger, primary_key=True, autoincrement=False),
    Column("vehicle_class", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("trip_id", BigInteger),
    Column("version", Integer, nullable=False),
    # No index but the primary key: every read and write finds a driver by id, and with no
    # other index on a column a status change writes, PostgreSQL updates the row in place
    # (migration 0009).
)

offers = Table(
    "offers",
    Base.metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("trip_id", BigInteger, nullable=False),
    Column("driver_id", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("responded_at", Float),
    Column("rank", Integer, nullable=False),
    Column("distance_m", Float, nullable=False),
    Column("eta_s", Float, nullable=False),
    Column("version", Integer, nullable=False),
    # At most one pending offer per driver and per trip, whatever the number of API processes.
    Index("uq_offers_pending_driver", "driver_id", unique=True,
          sqlite_where=text("state = 'pending'"), postgresql_where=text("state = 'pending'")),
    Index("uq_offers_pending_trip", "trip_id", unique=True,
          sqlite_where=text("state = 'pending'"), postgresql_where=text("state = 'pending'")),
    Index("ix_offers_trip", "trip_id"),
    Index("ix_offers_deadline", "state", "deadline"),
)

dispatch_records = Table(
    "dispatch_records",
    Base.metadata,
    Column("trip_id", BigInteger, primary_key=True, autoincrement=False),
    Column("created_at", Float, nullable=False),
    Column("events", JSON, nullable=False),
    Column("outcome", String(32)),
    Column("version", Integer, nullable=False),
)
