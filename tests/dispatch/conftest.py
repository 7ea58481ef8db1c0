"""The dispatch repository contract suite writes rows in every state (and queries the whole
table), so each PostgreSQL test gets a fresh schema of its own: the same empty database the
memory and SQLite variants start from, and no stray rows for other packages' invariant checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dispatch.cluster import LocalEvents
from dispatch.drivers import DriverDirectory
from dispatch.feed import InProcessFeed
from dispatch.trace_pages import LocalTraces
from geoindex import GeoIndex
from ridehail.kernel.clock import SystemClock
from ridehail.units import memory_uow_factory
from tests.conftest import throwaway_pg_schema


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    yield from throwaway_pg_schema("rh_dispatch")


def directory_for(index: GeoIndex) -> DriverDirectory:
    """A driver directory over `index` with nothing behind it but memory: what a process
    knows of drivers is then only what the test mirrors into it (`apply_event`)."""
    return DriverDirectory(memory_uow_factory(), index, SystemClock(), InProcessFeed(index),
                           LocalEvents(), LocalTraces())
