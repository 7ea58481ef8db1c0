"""Account storage behind one interface, in SQL (the API) and in memory (unit tests, the
simulator's engine mode). Both keep emails lower-cased and raise `DuplicateEmail` the same way."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, insert, select, update
from sqlalchemy.exc import IntegrityError

from ridehail.kernel.units import MemoryStore, UndoLog

from .model import (
    Account,
    DuplicateEmail,
    Principal,
    Role,
    TokenSession,
    Vehicle,
    VehicleClass,
    normalize_email,
)
from .tables import accounts, api_tokens, vehicles


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back naive (they were written as UTC); PostgreSQL in the
    # session's zone. Callers always get aware UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SqlAccountRepository:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add(self, account: Account) -> None:
        email = normalize_email(account.email)
        # A failed INSERT aborts a PostgreSQL transaction; the savepoint confines it so the
        # unit of work stays usable and the caller gets a DuplicateEmail instead.
        try:
            with self.connection.begin_nested():
                self.connection.execute(insert(accounts).values(
                    id=int(account.id), role=str(account.role), name=account.name, email=email,
                    phone=account.phone, password_hash=account.password_hash,
                    created_at=account.created_at, rating_sum=account.rating_sum,
                    rating_count=account.rating_count,
                ))
                if account.vehicle is not None:
                    v = account.vehicle
                    self.connection.execute(insert(vehicles).values(
                        driver_id=int(account.id), make=v.make, model=v.model, plate=v.plate,
                        seats=v.seats, vehicle_class=str(v.vehicle_class),
                    ))
        except IntegrityError:
            if self.get_by_email(email) is not None:
                raise DuplicateEmail(email) from None
            raise

    def _select(self) -> Any:
        return select(
            accounts,
            vehicles.c.make, vehicles.c.model, vehicles.c.plate, vehicles.c.seats,
            vehicles.c.vehicle_class,
        ).select_from(accounts.outerjoin(vehicles, vehicles.c.driver_id == accounts.c.id))

    @staticmethod
    def _account(row: Row[Any] | None) -> Account | None:
        if row is None:
            return None
        m = row._mapping
        vehicle = None
        if m["vehicle_class"] is not None:
            vehicle = Vehicle(make=m["make"], model=m["model"], plate=m["plate"],
                              seats=m["seats"], vehicle_class=VehicleClass(m["vehicle_class"]))
        return Account(
            id=str(m["id"]), role=Role(m["role"]), name=m["name"], email=m["email"],
            password_hash=m["password_hash"], created_at=_utc(m["created_at"]),
            phone=m["phone"], vehicle=vehicle, rating_sum=m["rating_sum"],
            rating_count=m["rating_count"],
        )

    def get(self, account_id: str) -> Account | None:
        try:
            key = int(account_id)
        except ValueError:
            return None
        if not 0 <= key < 2**63:  # out of BIGINT range: no such row, and no database error
            return None
        row = self.connection.execute(self._select().where(accounts.c.id == key)).first()
        return self._account(row)

    def get_by_email(self, email: str) -> Account | None:
        query = self._select().where(accounts.c.email == normalize_email(email))
        return self._account(self.connection.execute(query).first())

    def add_token(self, token_hash: str, account_id: str, created_at: datetime) -> None:
        self.connection.execute(insert(api_tokens).values(
            token_hash=token_hash, account_id=int(account_id), created_at=created_at,
            last_used_at=created_at,
        ))

    def session_for(self, token_hash: str) -> TokenSession | None:
        t = api_tokens.c
        row = self.connection.execute(
            select(t.account_id, accounts.c.role, t.created_at, t.last_used_at)
            .join(accounts, accounts.c.id == t.account_id)
            .where(t.token_hash == token_hash, t.revoked_at.is_(None))
        ).first()
        if row is None:
            return None
        created = _utc(row.created_at)
        return TokenSession(
            Principal(account_id=str(row.account_id), role=Role(row.role),
                      token_hash=token_hash),
            created_at=created,
            last_used_at=created if row.last_used_at is None else _utc(row.last_used_at),
        )

    def touch_token(self, token_hash: str, at: datetime) -> bool:
        t = api_tokens.c
        # Only forward: a slow request must not move another's later touch back.
        result = self.connection.execute(
            update(api_tokens)
            .where(t.token_hash == token_hash, t.revoked_at.is_(None),
                   (t.last_used_at.is_(None)) | (t.last_used_at < at))
            .values(last_used_at=at)
        )
        return bool(result.rowcount)

    def revoke_token(self, token_hash: str, at: datetime) -> bool:
        result = self.connection.execute(
            update(api_tokens)
            .where(api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return bool(result.rowcount)

    def revoke_account_tokens(self, account_id: str, at: datetime) -> int:
        try:
            key = int(account_id)
        except ValueError:
            return 0
        result = self.connection.execute(
            update(api_tokens)
            .where(api_tokens.c.account_id == key, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount)

    def update_password_hash(self, account_id: str, password_hash: str) -> None:
        self.connection.execute(
            update(accounts).where(accounts.c.id == int(account_id))
            .values(password_hash=password_hash)
        )

    def add_rating(self, account_id: str, stars: int) -> None:
        # One UPDATE: concurrent ratings add up instead of overwriting each other.
        self.connection.execute(
            update(accounts).where(accounts.c.id == int(account_id)).values(
                rating_sum=accounts.c.rating_sum + stars,
                rating_count=accounts.c.rating_count + 1,
            )
        )


class _MemoryToken(NamedTuple):
    account_id: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime


class MemoryAccountRepository:
    """Tables: accounts (id -> Account), account_emails (email -> id), api_tokens
    (hash -> _MemoryToken). Writes go through the undo log only, and
    values are copied in and out so a caller mutating an Account cannot bypass it."""

    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        self.undo = undo
        self.accounts = store.table("accounts")
        self.emails = store.table("account_emails")
        self.tokens = store.table("api_tokens")

    def add(self, account: Account) -> None:
        email = normalize_email(account.email)
        if email in self.emails:
            raise DuplicateEmail(email)
        stored = copy.deepcopy(account)
        stored.email = email
        self.undo.set(self.accounts, stored.id, stored)
        self.undo.set(self.emails, email, stored.id)

    def get(self, account_id: str) -> Account | None:
        account = self.accounts.get(account_id)
        return copy.deepcopy(account) if account is not None else None

    def get_by_email(self, email: str) -> Account | None:
        account_id = self.emails.get(normalize_email(email))
        return self.get(account_id) if account_id is not None else None

    def add_token(self, token_hash: str, account_id: str, created_at: datetime) -> None:
        if account_id not in self.accounts:  # what the foreign key does in SQL
            raise KeyError(f"no account {account_id!r}")
        if token_hash in self.tokens:  # what the primary key does in SQL
            raise KeyError(f"token hash {token_hash!r} already stored")
        self.undo.set(self.tokens, token_hash,
                      _MemoryToken(account_id, created_at, None, created_at))

    def session_for(self, token_hash: str) -> TokenSession | None:
        entry: _MemoryToken | None = self.tokens.get(token_hash)
        if entry is None or entry.revoked_at is not None:
            return None
        account = self.accounts.get(entry.account_id)
        if account is None:
            return None
        principal = Principal(account_id=account.id, role=account.role, token_hash=token_hash)
        return TokenSession(principal, created_at=entry.created_at,
                            last_used_at=entry.last_used_at)

    def touch_token(self, token_hash: str, at: datetime) -> bool:
        entry: _MemoryToken | None = self.tokens.get(token_hash)
        if entry is None or entry.revoked_at is not None or entry.last_used_at >= at:
            return False
        self.undo.set(self.tokens, token_hash, entry._replace(last_used_at=at))
        return True

    def revoke_token(self, token_hash: str, at: datetime) -> bool:
        entry: _MemoryToken | None = self.tokens.get(token_hash)
        if entry is None or entry.revoked_at is not None:
            return False
        self.undo.set(self.tokens, token_hash, entry._replace(revoked_at=at))
        return True

    def revoke_account_tokens(self, account_id: str, at: datetime) -> int:
        # A scan: the memory store serves tests and the simulator, with few tokens each.
        mine = [h for h, e in self.tokens.items()
                if e.account_id == account_id and e.revoked_at is None]
        for h in mine:
            self.undo.set(self.tokens, h, self.tokens[h]._replace(revoked_at=at))
        return len(mine)

    def _replace(self, account_id: str, **changes: Any) -> None:
        account = self.accounts.get(account_id)
        if account is None:
            return  # like an UPDATE that matches no row
        updated = copy.deepcopy(account)
        for name, value in changes.items():
            setattr(updated, name, value)
        self.undo.set(self.accounts, account_id, updated)

    def update_password_hash(self, account_id: str, password_hash: str) -> None:
        self._replace(account_id, password_hash=password_hash)

    def add_rating(self, account_id: str, stars: int) -> None:
        account = self.accounts.get(account_id)
        if account is not None:
            self._replace(account_id, rating_sum=account.rating_sum + stars,
                          rating_count=account.rating_count + 1)

