"""The payments tests write trips straight into the database (completed, or in states a
real ride would pass through with offers); they get a PostgreSQL schema of their own, so
other packages' whole-database invariant checks never see those rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from ..conftest import PG_URL


@pytest.fixture(scope="package")
def pg_schema_url() -> Iterator[str]:
    if not PG_URL.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: RIDEHAIL_DATABASE_URL is not set to a postgresql:// URL")
    from ridehail.db import make_engine

    schema = f"rh_pay_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
