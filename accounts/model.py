"""Accounts as plain data: riders, drivers (with a vehicle), fleet services, admins, and the
principal a bearer token stands for. No Flask, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    rider = "rider"
    driver = "driver"
    service = "service"  # fleet gateways and the simulator: token only, no password
    admin = "admin"


class VehicleClass(StrEnum):
    standard = "standard"
    xl = "xl"
    premium = "premium"


@dataclass
class Vehicle:
    make: str
    model: str
    plate: str
    seats: int
    vehicle_class: VehicleClass


@dataclass
class Account:
    id: str
    role: Role
    name: str
    email: str
    password_hash: str
    created_at: datetime
    phone: str | None = None
    vehicle: Vehicle | None = None
    rating_sum: int = 0
    rating_count: int = 0

    @property
    def rating_average(self) -> float | None:
        if self.rating_count == 0:
            return None
        return round(self.rating_sum / self.rating_count, 2)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the account behind a valid, unrevoked token."""

    account_id: str
    role: Role
    token_hash: str


# Accounts that cannot log in with a password (services, admins created from the CLI) carry
# this instead of a hash; it never verifies.
UNUSABLE_PASSWORD = "!"


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively, so they are stored and looked up lower-cased."""
    return email.strip().lower()


class AccountError(Exception):
    """Base of the accounts domain errors."""


class DuplicateEmail(AccountError):
    def __init__(self, email: str) -> None:
        super().__init__(f"an account with email {email!r} already exists")
        self.email = email


class InvalidCredentials(AccountError):
    """Wrong password or unknown email: deliberately one error, so the two look the same."""

    def __init__(self) -> None:
        super().__init__("wrong email or password")


class AccountNotFound(AccountError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id!r} does not exist")
        self.account_id = account_id
