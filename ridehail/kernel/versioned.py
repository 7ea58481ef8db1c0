"""Versioned rows for repositories: every save is a compare-and-set on `version`, in SQL
(`UPDATE ... WHERE id = :id AND version = :seen`) and in memory alike. A lost race surfaces as
`Conflict` instead of a silent overwrite, which is how claims stay atomic across processes."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, Table, and_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from .errors import Conflict
from .units import MemoryStore, UndoLog

T = TypeVar("T")



class RowCodec(Generic[T]):
    """Turns dataclasses into rows and back. Id columns are BIGINT in the database and str in
    the domain; enums are stored as their values."""

    def __init__(self, cls: type[T], id_columns: Iterable[str],
                 decoders: dict[str, Callable[[Any], Any]] | None = None) -> None:
        self.cls = cls
        self.fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        self.id_columns = set(id_columns)
        self.decoders = decoders or {}

    def to_row(self, obj: T) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name in self.fields:
            value = getattr(obj, name)
            if name in self.id_columns and value is not None:
                value = int(value)
            elif hasattr(value, "value") and isinstance(value.value, str):
                value = value.value
            elif isinstance(value, list):
                value = list(value)
            row[name] = value
        return row

    def from_row(self, row: Any) -> T:
        data = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
        for name in self.id_columns:
            if data.get(name) is not None:
                data[name] = str(data[name])
        for name, decode in self.decoders.items():
            if data.get(name) is not None:
                data[name] = decode(data[name])
        return self.cls(**{k: data[k] for k in self.fields if k in data})


@dataclasses.dataclass(frozen=True)
class _Statements:
    """A table's insert, read by key and compare-and-set update, built once per table, key and
    dialect and run with the row as parameters: a statement built per call with the row in
    `.values()` cost more in SQLAlchemy's construction and cache key than the round trip
    (py-spy of a trip request: about a third of the request threads' GIL time)."""

    insert: Any
    get: Any
    get_for_update: Any
    update: Any


_BUILT: dict[tuple[Table, str, str], _Statements] = {}


def _statements(table: Table, key: str, dialect: str) -> _Statements:
    built = _BUILT.get((table, key, dialect))
    if built is None:
        key_column = table.c[key]
        if dialect in ("postgresql", "sqlite"):
            module = postgresql if dialect == "postgresql" else sqlite
            add: Any = module.insert(table).on_conflict_do_nothing().returning(key_column)
        else:
            add = insert(table)
        get = select(table).where(key_column == bindparam("w_key"))
        # The row's columns are the SET clause; w_ names are not columns.
        cas = update(table).where(key_column == bindparam("w_key"),
                                  table.c.version == bindparam("w_seen"))
        built = _BUILT[(table, key, dialect)] = _Statements(add, get, get.with_for_update(), cas)
    return built


class SqlVersioned(Generic[T]):
    """Round trips are the cost of a use case on PostgreSQL (py-spy of a trip request: each
    savepoint is two more, and the claim's were more than half its time), so an insert that
    may hit a unique rule asks `ON CONFLICT DO NOTHING` instead of wrapping itself in a
    savepoint, and a table whose updates do not break a unique rule in any use case
    (`updates_unique` False: only its key is unique, or its rows are never updated back into
    the constrained state) updates without one. A lost race (a version or a unique rule) is a
    Conflict either way and leaves the transaction usable, so a caller may go on (the next
    candidate driver); only an update that breaks a unique rule of such a table spends it."""

    updates_unique = True  # may an UPDATE of this table violate a unique index?

    def __init__(self, conn: Connection, table: Table, codec: RowCodec[T], key: str = "id"):
        self.conn = conn
        self.table = table
        self.codec = codec
        self.key = key
        self.statements = _statements(table, key, conn.dialect.name)

    def insert(self, obj: T) -> None:
        row = self.codec.to_row(obj)
        if self.conn.dialect.name in ("postgresql", "sqlite"):
            inserted = self.conn.execute(self.statements.insert, row)
            if inserted.first() is None:
                raise Conflict(f"{self.table.name} {row.get(self.key)} conflicts with a stored "
                               "row (a unique rule)")
            return
        try:
            with self.conn.begin_nested():
                self.conn.execute(self.statements.insert, row)
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    def get(self, key: str, *, for_update: bool = False) -> T | None:
        stmt = self.statements.get_for_update if for_update else self.statements.get
        row = self.conn.execute(stmt, {"w_key": int(key)}).first()
        return None if row is None else self.codec.from_row(row)

    def find(self, *conditions: Any, order_by: Any = None, limit: int | None = None) -> list[T]:
        stmt = select(self.table).where(and_(*conditions))
        if order_by is not None:
            stmt = stmt.order_by(order_by)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [self.codec.from_row(r) for r in self.conn.execute(stmt)]

    def may_break_unique(self, obj: T) -> bool:
        """May writing `obj` back violate a unique index of the table (then the update runs in
        a savepoint)? `updates_unique`, unless the table knows better of this row."""
        return self.updates_unique

    def save(self, obj: T) -> None:
        """Write `obj` if nobody changed it since we read it; bump its version."""
        seen = obj.version  # type: ignore[attr-defined]
        row = self.codec.to_row(obj)
        row["version"] = seen + 1
        row["w_key"] = row.pop(self.key)
        row["w_seen"] = seen
        # Without a savepoint an IntegrityError (not expected of such a table) is still a
        # Conflict, but the transaction is spent (PostgreSQL aborts it): the caller gives up.
        scope = self.conn.begin_nested() if self.may_break_unique(obj) \
            else contextlib.nullcontext()
        try:
            with scope:
                result = self.conn.execute(self.statements.update, row)
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None
        if result.rowcount != 1:
            raise Conflict(f"{self.table.name} {row['w_key']} changed concurrently")
        obj.version = seen + 1  # type: ignore[attr-defined]


class MemoryVersioned(Generic[T]):
    """The same contract over a dict of copies (callers never alias stored objects).
    Uniqueness rules are kept in a hash index, as a database would, so checks are O(1)."""

    def __init__(self, store: MemoryStore, undo: UndoLog, name: str, key: str = "id",
                 unique: Callable[[T], Iterable[tuple[str, Any]]] | None = None) -> None:
        self.rows: dict[str, T] = store.table(name)
        self.uidx: dict[tuple[str, Any], str] = store.table(name + ":unique")
        self.undo = undo
        self.key = key
        # Uniqueness rules: each object yields (rule, value) pairs that must be unique.
        self.unique = unique

    def _reindex(self, key: str, old: T | None, new: T) -> None:
        if self.unique is None:
            return
        new_pairs = set(self.unique(new))
        for pair in new_pairs:
            owner = self.uidx.get(pair)
            if owner is not None and owner != key:
                raise Conflict(f"uniqueness {pair[0]}: {pair[1]} is taken")
        old_pairs = set(self.unique(old)) if old is not None else set()
        for pair in old_pairs - new_pairs:
            self.undo.delete(self.uidx, pair)
        for pair in new_pairs - old_pairs:
            self.undo.set(self.uidx, pair, key)

    def insert(self, obj: T) -> None:
        key = getattr(obj, self.key)
        if key in self.rows:
            raise Conflict(f"duplicate key {key}")
        self._reindex(key, None, obj)
        self.undo.set(self.rows, key, _copy(obj))

    def get(self, key: str, *, for_update: bool = False) -> T | None:
        obj = self.rows.get(key)
        return None if obj is None else _copy(obj)

    def values(self) -> Iterable[T]:
        return self.rows.values()

    def lookup(self, rule: str, value: Any) -> T | None:
        """The row that holds a unique value (e.g. a driver's live trip), or None."""
        key = self.uidx.get((rule, value))
        return None if key is None else self.get(key)

    def save(self, obj: T) -> None:
        key = getattr(obj, self.key)
        current = self.rows.get(key)
        seen = obj.version  # type: ignore[attr-defined]
        if current is None or current.version != seen:  # type: ignore[attr-defined]
            raise Conflict(f"{key} changed concurrently")
        new = _copy(obj)
        new.version = seen + 1  # type: ignore[attr-defined]
        self._reindex(key, current, new)
        obj.version = seen + 1  # type: ignore[attr-defined]
        self.undo.set(self.rows, key, new)


# Types whose values are never containers: no check needed. It starts with the builtins and
# learns each other type (an enum, a Decimal) the first time one is found not to be a list or
# a dict, so a row's enum fields cost a set lookup instead of an isinstance each copy.
_PLAIN: set[type] = {str, float, int, bool, type(None)}


def _copy(obj: T) -> T:
    state = getattr(obj, "__dict__", None)
    if state is not None:
        # The same copy as dataclasses.replace below without re-running __init__ (the
        # simulator copies ~100k rows a minute; replace was ~3x slower). Lists and dicts are
        # copied one level deep so callers never alias stored containers. The plain values
        # skip the isinstance check (a trip's 29 fields: 5.2 us a copy with it, 1.6 without).
        twin = object.__new__(type(obj))
        fresh = twin.__dict__
        fresh.update(state)
        for k, v in fresh.items():
            t = type(v)
            if t not in _PLAIN:
                if isinstance(v, list | dict):
                    fresh[k] = t(v)
                else:
                    _PLAIN.add(t)
        return twin
    new = dataclasses.replace(obj)  # type: ignore[type-var]
    for f in dataclasses.fields(new):  # type: ignore[arg-type]
        value = getattr(new, f.name)
        if isinstance(value, list | dict):
            setattr(new, f.name, type(value)(value))
    return new


class Versioned(Protocol[T]):
    """What every versioned repository offers, in SQL and in memory: read a row by its key,
    and save it back as a compare-and-set on its version (a lost race raises `Conflict`)."""

    def get(self, key: str, *, for_update: bool = False) -> T | None: ...

    def save(self, obj: T) -> None: ...
