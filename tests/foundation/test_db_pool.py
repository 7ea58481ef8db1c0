"""The PostgreSQL pool (ridehail/kernel/db.py): a pooled connection the server dropped while
it sat idle is replaced before anyone uses it; one in steady use is handed out without a ping
(each ping is a round trip of the request that checks the connection out)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ridehail.kernel import db
from ridehail.kernel.db import make_engine
from tests.conftest import NEEDS_PG, PG_URL

pytestmark = NEEDS_PG


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setattr(db, "PING_IDLE_S", 0.2)
    eng = make_engine(PG_URL, pool_size=1, max_overflow=0)
    yield eng
    eng.dispose()


def counting_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pool's pings so far, as a one-element list (the dialect's own ping, counted)."""
    count = [0]
    ping = engine.dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        count[0] += 1
        return ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return count


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_dropped_while_idle_is_replaced_before_use(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    pings = counting_pings(engine, monkeypatch)
    first = backend_pid(engine)
    admin = make_engine(PG_URL)
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar_one()
        conn.commit()
    admin.dispose()
    time.sleep(0.3)  # idle past PING_IDLE_S: the next checkout pings it
    second = backend_pid(engine)  # without the ping: OperationalError, server closed it
    assert second != first
    assert pings[0] == 1


def test_a_connection_in_steady_use_is_not_pinged(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    pings = counting_pings(engine, monkeypatch)
    pids = {backend_pid(engine) for _ in range(20)}
    assert len(pids) == 1  # the same pooled connection each time
    assert pings[0] == 0
