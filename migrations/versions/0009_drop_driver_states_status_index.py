"""Drop ix_driver_states_status (issue 16).

No query reads driver states by status alone: every claim, release and status change finds
its rows by the primary key, and the reconcile's pages walk the primary key. The index only
cost, on every status change:

- the write itself: an indexed column changed, so PostgreSQL could not update the row in place
  (a HOT update) and wrote a new entry into both indexes. Without it, a driver's status changes
  are HOT updates (`tests/dispatch/test_driver_state_writes.py`);
- the claim's plan: on a table without statistics yet (a new deployment, a freshly seeded
  one), the planner took the claim's `status = 'available'` for selective and combined the
  two indexes (a BitmapAnd), reading the status index's entry of every available driver
  (0.40 ms against 0.18 ms by the primary key alone, with 10,000 drivers).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_driver_states_status", table_name="driver_states")


def downgrade() -> None:
    op.create_index("ix_driver_states_status", "driver_states", ["status"])
