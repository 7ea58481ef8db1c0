from __future__ import annotations

from sqlalchemy import inspect

from ridehail.kernel.db import make_engine
from ridehail.migrate import current_revision, head_revision, upgrade
from ridehail.settings import Settings
from ridehail.tables import metadata


def test_migrations_apply_and_match_the_models(any_db_settings: Settings) -> None:
    url = any_db_settings.database_url
    engine = make_engine(url)
    upgrade(url, engine=engine)
    assert current_revision(engine) == head_revision()
    # Every mapped table exists after the migrations, with every mapped column.
    insp = inspect(engine)
    tables = set(insp.get_table_names())
    for table in metadata.sorted_tables:
        assert table.name in tables
        columns = {c["name"] for c in insp.get_columns(table.name)}
        assert {c.name for c in table.columns} <= columns, table.name
    upgrade(url, engine=engine)  # a second upgrade is a no-op
    assert current_revision(engine) == head_revision()
    engine.dispose()
