"""trips, driver states, offers, dispatch records

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LIVE = "state IN ('driver_assigned', 'driver_arrived', 'in_progress')"
OPEN = "state IN ('requested', 'driver_assigned', 'driver_arrived', 'in_progress')"
PENDING = "state = 'pending'"


def upgrade() -> None:
    op.create_table(
        "trips",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rider_id", sa.BigInteger, nullable=False),
        sa.Column("driver_id", sa.BigInteger, nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("vehicle_class", sa.String(16), nullable=False),
        sa.Column("pickup_lat", sa.Float, nullable=False),
        sa.Column("pickup_lng", sa.Float, nullable=False),
        sa.Column("dropoff_lat", sa.Float, nullable=False),
        sa.Column("dropoff_lng", sa.Float, nullable=False),
        sa.Column("requested_at", sa.Float, nullable=False),
        sa.Column("assigned_at", sa.Float),
        sa.Column("arrived_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("completed_at", sa.Float),
        sa.Column("cancelled_at", sa.Float),
        sa.Column("cancelled_by", sa.String(16)),
        sa.Column("cancel_reason", sa.String(200)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("fare_estimate", sa.BigInteger),
        sa.Column("fare_final", sa.BigInteger),
        sa.Column("surge", sa.String(8), nullable=False),
        sa.Column("distance_m", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.Column("payment_state", sa.String(16)),
        sa.Column("rejected_drivers", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("uq_trips_live_driver", "trips", ["driver_id"], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    op.create_index("uq_trips_open_rider", "trips", ["rider_id"], unique=True,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))
    op.create_index("ix_trips_rider", "trips", ["rider_id", "requested_at"])

    op.create_table(
        "driver_states",
        sa.Column("driver_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("vehicle_class", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("trip_id", sa.BigInteger),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_driver_states_status", "driver_states", ["status"])

    op.create_table(
        "offers",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("trip_id", sa.BigInteger, nullable=False),
        sa.Column("driver_id", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("deadline", sa.Float, nullable=False),
        sa.Column("responded_at", sa.Float),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("distance_m", sa.Float, nullable=False),
        sa.Column("eta_s", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("uq_offers_pending_driver", "offers", ["driver_id"], unique=True,
                    sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING))
    op.create_index("uq_offers_pending_trip", "offers", ["trip_id"], unique=True,
                    sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING))
    op.create_index("ix_offers_trip", "offers", ["trip_id"])
    op.create_index("ix_offers_deadline", "offers", ["state", "deadline"])

    op.create_table(
        "dispatch_records",
        sa.Column("trip_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("outcome", sa.String(32)),
        sa.Column("version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("dispatch_records", "offers", "driver_states", "trips"):
        op.drop_table(table)
