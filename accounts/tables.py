"""SQLAlchemy Core tables for accounts, vehicles and API tokens (on the shared metadata, so
Alembic and `ridehail.tables.metadata` see them). Ids are 64-bit ints from `ridehail.kernel.ids`."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Integer, String, Table, text

from ridehail.kernel.db import Base

metadata = Base.metadata

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("role", String(16), nullable=False),
    Column("name", String(100), nullable=False),
    # Stored lower-cased: the unique constraint is then case-insensitive on every database.
    Column("email", String(254), nullable=False, unique=True),
    Column("phone", String(20), nullable=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("rating_sum", Integer, nullable=False, server_default=text("0")),
    Column("rating_count", Integer, nullable=False, server_default=text("0")),
)

vehicles = Table(
    "vehicles",
    metadata,
    Column(
        "driver_id",
        BigInteger,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("make", String(50), nullable=False),
    Column("model", String(50), nullable=False),
    Column("plate", String(16), nullable=False),
    Column("seats", Integer, nullable=False),
    Column("vehicle_class", String(16), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "account_id",
        BigInteger,
        ForeignKey("accounts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # The sliding expiry's anchor, written at most once per RIDEHAIL_TOKEN_TOUCH_INTERVAL_S
    # (migration 0005; NULL reads as created_at).
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)
