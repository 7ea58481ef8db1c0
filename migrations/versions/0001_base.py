"""base: an empty schema stamped with a version, so later revisions have a parent.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
