"""Units of work: one transaction each, over SQLAlchemy (the API, the worker) or memory (unit
tests and the simulator's engine mode). This module holds the transaction machinery only; which
repositories a unit carries is decided by the wiring (`ridehail/units.py`), typed by the
Protocols each domain package declares (`accounts/unit.py`, `trips/unit.py`, `dispatch/unit.py`).

The convention (docs/architecture.md): a use case takes the unit-of-work *factory* and opens the
units it needs with `with units() as uow:`; helpers that work inside an open unit take `uow`.
Opening a unit that is already open is an error (`UnitAlreadyOpen`): it would orphan the first
connection and its transaction.

Memory semantics match the SQL ones where invariants depend on them: a unit of work holds the
store's lock for its duration (serialisable), and a unit that is not committed is rolled back
through an undo log, so a use case that raises half way leaves nothing behind.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy import Connection, Engine

_MISSING = object()


class UnitAlreadyOpen(RuntimeError):
    """`with uow:` on a unit that is already open: pass the factory, never an open unit."""


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


class SqlUnit:
    """A connection and a transaction. `readonly` units on SQLite begin DEFERRED (readers run
    side by side under WAL); the others begin IMMEDIATE, taking the write lock up front so a
    read-then-write unit never fails half way on a lock upgrade.

    Subclasses (the wiring's) bind their repositories to the connection in `bind`."""

    def __init__(self, engine: Engine, readonly: bool = False) -> None:
        self.engine = engine
        self.readonly = readonly
        self.committed = False
        self._open = False

    def bind(self, connection: Connection) -> None:
        """Create this unit's repositories on `connection` (the wiring's subclass does)."""

    def __enter__(self) -> Self:
        if self._open:
            raise UnitAlreadyOpen("this unit of work is already open; pass the factory")
        self._open = True
        self.committed = False
        self.connection = self.engine.connect()
        try:
            self.connection.info["sqlite_deferred"] = self.readonly
            self._tx = self.connection.begin()
            self.bind(self.connection)
        except BaseException:
            self._open = False
            self.connection.close()
            raise
        return self

    def commit(self) -> None:
        self._tx.commit()
        self.committed = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.connection.in_transaction():
                self.connection.rollback()
        finally:
            self.connection.close()
            self._open = False


class MemoryUnit:
    """The memory twin: the store's lock for the unit's duration, an undo log for rollback."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.committed = False
        self._open = False

    def bind(self, store: MemoryStore, undo: UndoLog) -> None:
        """Create this unit's repositories over `store` (the wiring's subclass does)."""

    def __enter__(self) -> Self:
        if self._open:
            raise UnitAlreadyOpen("this unit of work is already open; pass the factory")
        self.store.lock.acquire()
        self._open = True
        self.committed = False
        self.undo = UndoLog()
        self.bind(self.store, self.undo)
        return self

    def commit(self) -> None:
        self.undo.clear()
        self.committed = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.undo.rollback()
        finally:
            self._open = False
            self.store.lock.release()


class Unit(Protocol):
    """A unit of work as the use cases see it: a context manager with `commit`. Each domain
    package extends it with the repositories it uses (`accounts/unit.py`, ...)."""

    committed: bool

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def commit(self) -> None: ...
