"""An index on trips (driver_id, requested_at) (issue 15).

A driver's trip history (`GET /v1/trips`, the reference driver app) reads a driver's trips,
newest first; without it that query scans every trip.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trips_driver", "trips", ["driver_id", "requested_at"])


def downgrade() -> None:
    op.drop_index("ix_trips_driver", table_name="trips")
