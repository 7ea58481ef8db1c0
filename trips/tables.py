"""SQLAlchemy Core mapping of trips. Times are epoch seconds (the engine's clock, which the
simulator replaces); money is integer minor units."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table, text

from ridehail.db import Base

LIVE_STATES = ("driver_assigned", "driver_arrived", "in_progress")
OPEN_STATES = ("requested", *LIVE_STATES)

trips = Table(
    "trips",
    Base.metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("rider_id", BigInteger, nullable=False),
    Column("driver_id", BigInteger, nullable=True),
    Column("state", String(20), nullable=False),
    Column("vehicle_class", String(16), nullable=False),
    Column("pickup_lat", Float, nullable=False),
    Column("pickup_lng", Float, nullable=False),
    Column("dropoff_lat", Float, nullable=False),
    Column("dropoff_lng", Float, nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("assigned_at", Float),
    Column("arrived_at", Float),
    Column("started_at", Float),
    Column("completed_at", Float),
    Column("cancelled_at", Float),
    Column("cancelled_by", String(16)),
    Column("cancel_reason", String(200)),
    Column("currency", String(3), nullable=False),
    Column("fare_estimate", BigInteger),
    Column("fare_final", BigInteger),
    Column("surge", String(8), nullable=False),
    Column("distance_m", Float),
    Column("duration_s", Float),
    Column("payment_state", String(16)),
    Column("rejected_drivers", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    # The invariants, enforced by the database itself across every API process:
    # a driver has at most one live trip; a rider has at most one open trip.
    Index(
        "uq_trips_live_driver", "driver_id", unique=True,
        sqlite_where=text(f"state IN {LIVE_STATES}"),
        postgresql_where=text(f"state IN {LIVE_STATES}"),
    ),
    Index(
        "uq_trips_open_rider", "rider_id", unique=True,
        sqlite_where=text(f"state IN {OPEN_STATES}"),
        postgresql_where=text(f"state IN {OPEN_STATES}"),
    ),
    Index("ix_trips_rider", "rider_id", "requested_at"),
)
