"""All mapped tables, gathered so Alembic sees one metadata. Each domain owns its tables.py."""

from __future__ import annotations

from .db import Base

metadata = Base.metadata
