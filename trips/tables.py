"""SQLAlchemy Core mapping of trips. Times are epoch seconds (the engine's clock, which the
simulator replaces); money is integer minor units."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table, text

from ridehail.kernel.db import Base

from .model import LIVE, OPEN, TripState

# The model's live and open states as SQL literals for the partial indexes, in declaration
# order (the text the migrations wrote).
LIVE_STATES = tuple(s.value for s in TripState if s in LIVE)
OPEN_STATES = tuple(s.value for s in TripState if s in OPEN)

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
    # Migration 0006: which rule set fare_final, and the optional pickup PIN.
    Column("fare_rule", String(24)),
    Column("pickup_pin", String(8)),
    Column("pin_attempts", Integer, nullable=False, server_default="0"),
    # Migration 0008: the route the upfront fare was priced on.
    Column("quote_duration_s", Float),
    Column("quote_distance_m", Float),
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
    Index("ix_trips_driver", "driver_id", "requested_at"),  # migration 0007: a driver's history
)

# --- payments, ledger, ratings (migration 0004) ----------------------------------------------
# Every row below is keyed by what makes it unique in the domain, so the database itself
# refuses a second charge record, a second set of ledger lines or a second rating.

PAYMENT_STATES = ("pending", "captured", "failed")

payment_methods = Table(
    "payment_methods",
    Base.metadata,
    # One default method per rider: adding a method replaces it.
    Column("account_id", BigInteger, primary_key=True, autoincrement=False),
    Column("token", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", Integer, nullable=False),
)

payments = Table(
    "payments",
    Base.metadata,
    Column("trip_id", BigInteger, primary_key=True, autoincrement=False),
    Column("rider_id", BigInteger, nullable=False),
    Column("driver_id", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("state", String(16), nullable=False),
    # Bumped when a failed payment is re-opened with a new method: part of the idempotency key.
    Column("generation", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("token", String(64)),
    Column("last_error", String(200)),
    Column("provider_charge_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("captured_at", Float),
    Column("version", Integer, nullable=False),
    Index("ix_payments_rider_state", "rider_id", "state"),
    Index("ix_payments_state_updated", "state", "updated_at"),
)

ledger_entries = Table(
    "ledger_entries",
    Base.metadata,
    # (trip_id, kind) is the key: a trip's ledger lines can be written once, whatever retries.
    Column("trip_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), primary_key=True),
    Column("account", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),  # signed minor units; a trip's lines sum to 0
    Column("currency", String(3), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_ledger_account", "account", "created_at"),
)

provider_charges = Table(
    "provider_charges",
    Base.metadata,
    # The sandbox provider's own book: one row per idempotency key, as a real provider keeps.
    Column("idempotency_key", String(80), primary_key=True),
    Column("charge_id", String(64), nullable=False),
    Column("token", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

ratings = Table(
    "ratings",
    Base.metadata,
    # (trip_id, rater_role): each party rates a trip once, enforced by the key.
    Column("trip_id", BigInteger, primary_key=True, autoincrement=False),
    Column("rater_role", String(8), primary_key=True),
    Column("rater_id", BigInteger, nullable=False),
    Column("ratee_id", BigInteger, nullable=False),
    Column("stars", Integer, nullable=False),
    Column("comment", String(500)),
    Column("created_at", Float, nullable=False),
    Column("applied", Integer, nullable=False),  # 0/1: counted in the ratee's aggregate
    Index("ix_ratings_applied", "applied", "created_at"),
)

rating_aggregates = Table(
    "rating_aggregates",
    Base.metadata,
    Column("account_id", BigInteger, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("recent", JSON, nullable=False),  # the last 20 stars, newest last
    Column("version", Integer, nullable=False),
)

# The stuck-payment sweep reads completed trips still pending; a partial index keeps it small.
Index("ix_trips_payment_pending", trips.c.completed_at,
      sqlite_where=text("payment_state = 'pending'"),
      postgresql_where=text("payment_state = 'pending'"))
