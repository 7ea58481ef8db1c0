"""All mapped tables, gathered so Alembic sees one metadata. Each domain owns its tables.py."""

from __future__ import annotations

import accounts.tables  # noqa: F401  (registers its tables on the metadata)
import dispatch.tables  # noqa: F401
import trips.tables  # noqa: F401

from .kernel.db import Base

metadata = Base.metadata
