"""payments, ledger, provider charges, payment methods, ratings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PENDING = "payment_state = 'pending'"


def upgrade() -> None:
    op.create_table(
        "payment_methods",
        sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "payments",
        sa.Column("trip_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rider_id", sa.BigInteger, nullable=False),
        sa.Column("driver_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("token", sa.String(64)),
        sa.Column("last_error", sa.String(200)),
        sa.Column("provider_charge_id", sa.String(64)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("captured_at", sa.Float),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_payments_rider_state", "payments", ["rider_id", "state"])
    op.create_index("ix_payments_state_updated", "payments", ["state", "updated_at"])
    op.create_table(
        "ledger_entries",
        sa.Column("trip_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("account", sa.String(40), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ledger_account", "ledger_entries", ["account", "created_at"])
    op.create_table(
        "provider_charges",
        sa.Column("idempotency_key", sa.String(80), primary_key=True),
        sa.Column("charge_id", sa.String(64), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "ratings",
        sa.Column("trip_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("rater_role", sa.String(8), primary_key=True),
        sa.Column("rater_id", sa.BigInteger, nullable=False),
        sa.Column("ratee_id", sa.BigInteger, nullable=False),
        sa.Column("stars", sa.Integer, nullable=False),
        sa.Column("comment", sa.String(500)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("applied", sa.Integer, nullable=False),
    )
    op.create_index("ix_ratings_applied", "ratings", ["applied", "created_at"])
    op.create_table(
        "rating_aggregates",
        sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("recent", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_trips_payment_pending", "trips", ["completed_at"],
                    sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING))


def downgrade() -> None:
    op.drop_index("ix_trips_payment_pending", "trips")
    for table in ("rating_aggregates", "ratings", "provider_charges", "ledger_entries",
                  "payments", "payment_methods"):
        op.drop_table(table)
