"""Units of work: one transaction each, over SQLAlchemy (the API) or memory (unit tests and the
simulator's engine mode). Each domain package defines its repositories against both; this module
only composes them, so services see one `uow` with `.accounts`, `.trips`, `.offers`, ...

Memory semantics match the SQL ones where invariants depend on them: a unit of work holds the
store's lock for its duration (serialisable), and a unit that is not committed is rolled back
through an undo log, so a service that raises half way leaves nothing behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine

_MISSING = object()


class UndoLog:
    """Records the previous value of every key a memory repository writes."""

    def __init__(self) -> None:
        self._entries: list[tuple[dict[Any, Any], Any, Any]] = []

    def record(self, table: dict[Any, Any], key: Any) -> None:
        self._entries.append((table, key, table.get(key, _MISSING)))

    def set(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self.record(table, key)
        table[key] = value

    def delete(self, table: dict[Any, Any], key: Any) -> None:
        self.record(table, key)
        table.pop(key, None)

    def rollback(self) -> None:
        for table, key, old in reversed(self._entries):
            if old is _MISSING:
                table.pop(key, None)
            else:
                table[key] = old
        self._entries.clear()

    def clear(self) -> None:
        self._entries.clear()


class MemoryStore:
    """The in-memory database: named tables (dicts) and the lock units of work serialise on."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._tables: dict[str, dict[Any, Any]] = {}

    def table(self, name: str) -> dict[Any, Any]:
        t = self._tables.get(name)
        if t is None:
            t = self._tables[name] = {}
        return t


RepoFactory = Callable[[Any, Any], Any]
# name -> (sql factory(conn, dialect_name), memory factory(store, undo))
_REPOSITORIES: dict[str, tuple[Callable[[Connection], Any], Callable[[MemoryStore, UndoLog], Any]]]
_REPOSITORIES = {}


def register_repository(
    name: str,
    sql: Callable[[Connection], Any],
    memory: Callable[[MemoryStore, UndoLog], Any],
) -> None:
    """Domain packages call this (from their repository module) to join the unit of work."""
    _REPOSITORIES[name] = (sql, memory)


def _load_repositories() -> None:
    # Importing the repository modules registers them; kept here so the wiring is in one place.
    import accounts.repository  # noqa: F401
    import dispatch.repository  # noqa: F401
    import trips.repository  # noqa: F401


class UnitOfWork:
    committed: bool

    def __enter__(self) -> UnitOfWork:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:  # repositories: uow.accounts, uow.trips, ...
        raise AttributeError(f"unit of work has no repository {name!r} (outside `with`?)")


class SqlUnitOfWork(UnitOfWork):
    """A connection and a transaction. `readonly` units on SQLite begin DEFERRED (readers run
    side by side under WAL); the others begin IMMEDIATE, taking the write lock up front so a
    read-then-write unit never fails half way on a lock upgrade."""

    def __init__(self, engine: Engine, readonly: bool = False) -> None:
        self.engine = engine
        self.readonly = readonly
        self.committed = False

    def __enter__(self) -> SqlUnitOfWork:
        _load_repositories()
        self.committed = False
        self.connection = self.engine.connect()
        self.connection.info["sqlite_deferred"] = self.readonly
        self._tx = self.connection.begin()
        for name, (sql, _memory) in _REPOSITORIES.items():
            setattr(self, name, sql(self.connection))
        return self

    def commit(self) -> None:
        self._tx.commit()
        self.committed = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self.connection.in_transaction():
                self.connection.rollback()
        finally:
            self.connection.close()
            for name in _REPOSITORIES:
                self.__dict__.pop(name, None)


class MemoryUnitOfWork(UnitOfWork):
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.committed = False

    def __enter__(self) -> MemoryUnitOfWork:
        _load_repositories()
        self.store.lock.acquire()
        self.committed = False
        self.undo = UndoLog()
        for name, (_sql, memory) in _REPOSITORIES.items():
            setattr(self, name, memory(self.store, self.undo))
        return self

    def commit(self) -> None:
        self.undo.clear()
        self.committed = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.undo.rollback()
        finally:
            for name in _REPOSITORIES:
                self.__dict__.pop(name, None)
            self.store.lock.release()


def sql_uow_factory(engine: Engine) -> Callable[..., UnitOfWork]:
    return lambda readonly=False: SqlUnitOfWork(engine, readonly)


def memory_uow_factory(store: MemoryStore | None = None) -> Callable[..., UnitOfWork]:
    store = store or MemoryStore()
    return lambda readonly=False: MemoryUnitOfWork(store)
