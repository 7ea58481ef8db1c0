"""The payments tests write trips straight into the database (completed, or in states a
real ride would pass through with offers); they get a PostgreSQL schema of their own, so
other packages' whole-database invariant checks never see those rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..conftest import throwaway_pg_schema


@pytest.fixture(scope="package")
def pg_schema_url() -> Iterator[str]:
    yield from throwaway_pg_schema("rh_pay")
