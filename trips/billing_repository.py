"""Repositories for payments, payment methods, the ledger and the sandbox provider's book:
SQL (the API and workers) and memory (unit tests, the simulator's engine mode). Uniqueness is
the database's job: one payment per trip, one set of ledger lines per trip, one provider
record per idempotency key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ridehail.kernel.errors import Conflict
from ridehail.kernel.units import MemoryStore, UndoLog
from ridehail.kernel.versioned import MemoryVersioned, RowCodec, SqlVersioned

from .ledger import LedgerEntry
from .payments import Payment, PaymentMethod, ProviderCharge
from .tables import ledger_entries, payment_methods, payments, provider_charges, trips

PAYMENT_CODEC: RowCodec[Payment] = RowCodec(Payment, id_columns=("trip_id", "rider_id",
                                                                  "driver_id"))
METHOD_CODEC: RowCodec[PaymentMethod] = RowCodec(PaymentMethod, id_columns=("account_id",))
LEDGER_CODEC: RowCodec[LedgerEntry] = RowCodec(LedgerEntry, id_columns=("trip_id",))
CHARGE_CODEC: RowCodec[ProviderCharge] = RowCodec(ProviderCharge, id_columns=())


# --- payments ------------------------------------------------------------------------------

class SqlPaymentRepository(SqlVersioned[Payment]):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, payments, PAYMENT_CODEC, key="trip_id")

    def add(self, payment: Payment) -> None:
        self.insert(payment)

    def for_rider(self, rider_id: str, state: str) -> list[Payment]:
        return self.find(payments.c.rider_id == int(rider_id), payments.c.state == state,
                         order_by=payments.c.created_at, limit=100)

    def stuck(self, cutoff: float, limit: int = 500) -> list[str]:
        """Completed trips whose payment is pending and untouched since `cutoff`, including
        those whose charge task never created a payment row (an enqueue lost with a crash)."""
        stmt = (
            select(trips.c.id)
            .select_from(trips.outerjoin(payments, payments.c.trip_id == trips.c.id))
            .where(trips.c.payment_state == "pending", trips.c.completed_at < cutoff,
                   or_(payments.c.trip_id.is_(None),
                       and_(payments.c.state == "pending", payments.c.updated_at < cutoff)))
            .order_by(trips.c.completed_at)
            .limit(limit)
        )
        return [str(r[0]) for r in self.conn.execute(stmt)]


class MemoryPaymentRepository(MemoryVersioned[Payment]):
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        super().__init__(store, undo, "payments", key="trip_id")
        self.trips = store.table("trips")

    def add(self, payment: Payment) -> None:
        self.insert(payment)

    def for_rider(self, rider_id: str, state: str) -> list[Payment]:
        found = [p for p in self.values() if p.rider_id == rider_id and p.state == state]
        found.sort(key=lambda p: p.created_at)
        return [_copy(p) for p in found[:100]]

    def stuck(self, cutoff: float, limit: int = 500) -> list[str]:
        found = []
        for trip in self.trips.values():
            if trip.payment_state != "pending" or (trip.completed_at or cutoff) >= cutoff:
                continue
            pay = self.rows.get(trip.id)
            if pay is None or (pay.state == "pending" and pay.updated_at < cutoff):
                found.append(trip)
        found.sort(key=lambda t: t.completed_at)  # oldest first, as the SQL query orders them
        return [t.id for t in found[:limit]]


# --- payment methods -----------------------------------------------------------------------

class SqlPaymentMethodRepository(SqlVersioned[PaymentMethod]):
    def __init__(self, conn: Connection) -> None:
        super().__init__(conn, payment_methods, METHOD_CODEC, key="account_id")

    def add(self, method: PaymentMethod) -> None:
        self.insert(method)


class MemoryPaymentMethodRepository(MemoryVersioned[PaymentMethod]):
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        super().__init__(store, undo, "payment_methods", key="account_id")

    def add(self, method: PaymentMethod) -> None:
        self.insert(method)


# --- ledger --------------------------------------------------------------------------------

class SqlLedgerRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, entry: LedgerEntry) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(ledger_entries).values(**LEDGER_CODEC.to_row(entry)))
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    def for_trip(self, trip_id: str) -> list[LedgerEntry]:
        rows = self.conn.execute(select(ledger_entries)
                                 .where(ledger_entries.c.trip_id == int(trip_id)))
        return [LEDGER_CODEC.from_row(r) for r in rows]

    def for_account(self, account: str, limit: int = 100) -> list[LedgerEntry]:
        rows = self.conn.execute(
            select(ledger_entries).where(ledger_entries.c.account == account)
            .order_by(ledger_entries.c.created_at.desc()).limit(limit))
        return [LEDGER_CODEC.from_row(r) for r in rows]

    def totals(self, account: str) -> tuple[int, int]:
        """(number of lines, balance) of an account."""
        row = self.conn.execute(
            select(func.count(), func.coalesce(func.sum(ledger_entries.c.amount), 0))
            .where(ledger_entries.c.account == account)).one()
        return int(row[0]), int(row[1])

    def sum_all(self) -> int:
        return int(self.conn.execute(
            select(func.coalesce(func.sum(ledger_entries.c.amount), 0))).scalar_one())


class MemoryLedgerRepository:
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        self.rows: dict[tuple[str, str], LedgerEntry] = store.table("ledger")
        self.undo = undo

    def add(self, entry: LedgerEntry) -> None:
        key = (entry.trip_id, entry.kind)
        if key in self.rows:
            raise Conflict(f"ledger line {key} exists")
        self.undo.set(self.rows, key, entry)

    def for_trip(self, trip_id: str) -> list[LedgerEntry]:
        return [e for (t, _k), e in self.rows.items() if t == trip_id]

    def for_account(self, account: str, limit: int = 100) -> list[LedgerEntry]:
        mine = [e for e in self.rows.values() if e.account == account]
        return sorted(mine, key=lambda e: e.created_at, reverse=True)[:limit]

    def totals(self, account: str) -> tuple[int, int]:
        mine = [e.amount for e in self.rows.values() if e.account == account]
        return len(mine), sum(mine)

    def sum_all(self) -> int:
        return sum(e.amount for e in self.rows.values())


# --- the sandbox provider's book -----------------------------------------------------------

class SqlProviderChargeRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, key: str) -> ProviderCharge | None:
        row = self.conn.execute(select(provider_charges)
                                .where(provider_charges.c.idempotency_key == key)).first()
        return None if row is None else CHARGE_CODEC.from_row(row)

    def add(self, rec: ProviderCharge) -> None:
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(provider_charges).values(**CHARGE_CODEC.to_row(rec)))
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from None

    def update(self, rec: ProviderCharge, *, seen_attempts: int) -> None:
        row = CHARGE_CODEC.to_row(rec)
        key = row.pop("idempotency_key")
        result = self.conn.execute(
            update(provider_charges).where(provider_charges.c.idempotency_key == key,
                                           provider_charges.c.attempts == seen_attempts)
            .values(**row))
        if result.rowcount != 1:
            raise Conflict(f"provider charge {key} changed concurrently")

    def count(self, status: str | None = None) -> int:
        stmt = select(func.count()).select_from(provider_charges)
        if status is not None:
            stmt = stmt.where(provider_charges.c.status == status)
        return int(self.conn.execute(stmt).scalar_one())


class MemoryProviderChargeRepository:
    def __init__(self, store: MemoryStore, undo: UndoLog) -> None:
        self.rows: dict[str, ProviderCharge] = store.table("provider_charges")
        self.undo = undo

    def get(self, key: str) -> ProviderCharge | None:
        rec = self.rows.get(key)
        return None if rec is None else _copy(rec)

    def add(self, rec: ProviderCharge) -> None:
        if rec.idempotency_key in self.rows:
            raise Conflict(f"provider charge {rec.idempotency_key} exists")
        self.undo.set(self.rows, rec.idempotency_key, _copy(rec))

    def update(self, rec: ProviderCharge, *, seen_attempts: int) -> None:
        current = self.rows.get(rec.idempotency_key)
        if current is None or current.attempts != seen_attempts:
            raise Conflict(f"provider charge {rec.idempotency_key} changed concurrently")
        self.undo.set(self.rows, rec.idempotency_key, _copy(rec))

    def count(self, status: str | None = None) -> int:
        return sum(1 for r in self.rows.values() if status is None or r.status == status)


def _copy(rec: Any) -> Any:
    import dataclasses

    return dataclasses.replace(rec)

