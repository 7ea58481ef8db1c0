"""Accounts as plain data: riders, drivers (with a vehicle), fleet services, admins, and the
principal a bearer token stands for. No Flask, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
    """Who a request acts as: the account behind a valid, unrevoked, unexpired token.
    `expires_at` (when known) bounds how long a cache may keep it; not part of its identity."""

    account_id: str
    role: Role
    token_hash: str
    expires_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class TokenSession:
    """A stored, unrevoked token: whom it stands for, when it was issued and last used."""

    principal: Principal
    created_at: datetime
    last_used_at: datetime


@dataclass(frozen=True)
class TokenPolicy:
    """When tokens expire (ASVS V3.3, NIST SP 800-63B 7.2): after `idle_s` without use, each
    use sliding it, and `max_age_s` after issue however busy. The last-used time is written at
    most once per `touch_s`, not on every request, so it lags by at most that much."""

    idle_s: float = 30 * 86400.0
    max_age_s: float = 90 * 86400.0
    touch_s: float = 60.0

    def expires_at(self, created_at: datetime, last_used_at: datetime) -> datetime:
        return min(last_used_at + timedelta(seconds=self.idle_s),
                   created_at + timedelta(seconds=self.max_age_s))


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


class WeakPassword(AccountError):
    """The password is too short, too common, or the account's own email or name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccountNotFound(AccountError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id!r} does not exist")
        self.account_id = account_id
