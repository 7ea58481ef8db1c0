"""api_tokens.last_used_at: tokens expire after a configurable idle time (issue 13, item 7).

Existing tokens count as last used when they were issued: the idle expiry then starts from
there instead of making every old session immortal or ending all of them at once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable at the database level (adding a NOT NULL column needs a table rebuild on
    # SQLite); the code always writes it, and reads a NULL as the issue time.
    op.add_column("api_tokens", sa.Column("last_used_at", sa.DateTime(timezone=True),
                                          nullable=True))
    op.execute("UPDATE api_tokens SET last_used_at = created_at WHERE last_used_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("last_used_at")
