"""trips.fare_rule, pickup_pin, pin_attempts (issue 13, items 3 and 15).

fare_rule says which written rule set fare_final (the upfront quote, the meter, the capped
meter, a cancellation or no-show fee); pickup_pin and pin_attempts hold the optional pickup PIN
and the wrong tries at it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("trips", sa.Column("fare_rule", sa.String(24), nullable=True))
    op.add_column("trips", sa.Column("pickup_pin", sa.String(8), nullable=True))
    op.add_column("trips", sa.Column("pin_attempts", sa.Integer, nullable=False,
                                     server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("trips") as batch:
        batch.drop_column("pin_attempts")
        batch.drop_column("pickup_pin")
        batch.drop_column("fare_rule")
