"""The trips repository contract suite writes rows in every state (and queries the whole
table), so each PostgreSQL test gets a fresh schema of its own: the same empty database the
memory and SQLite variants start from, and no stray rows for other packages' invariant checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import throwaway_pg_schema


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    yield from throwaway_pg_schema("rh_trips")
