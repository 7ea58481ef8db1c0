"""trips.quote_duration_s, quote_distance_m (issue 14).

The route the upfront fare was priced on. The meter compares the driven trip with it; asking
the travel-time model again at completion no longer answers the same once the model corrects
itself from live rides (dispatch/live_eta.py), nor in another process. Trips stored before
have none, and the meter asks the model as it did.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("trips", sa.Column("quote_duration_s", sa.Float, nullable=True))
    op.add_column("trips", sa.Column("quote_distance_m", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trips") as batch:
        batch.drop_column("quote_distance_m")
        batch.drop_column("quote_duration_s")
