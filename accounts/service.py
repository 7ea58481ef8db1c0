"""Account use cases: sign-up, log-in, tokens, profiles. Each takes the unit-of-work
factory and runs its writes in one transaction; none imports Flask. Times come from `now` so
tests can pin them.

Password hashing (tens of milliseconds) runs outside the transaction: inside it, on SQLite, it
would hold the database's write lock while the CPU works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from ridehail.kernel.ids import new_id

from . import password_policy, passwords
from .model import (
    UNUSABLE_PASSWORD,
    Account,
    AccountNotFound,
    DuplicateEmail,
    InvalidCredentials,
    Principal,
    Role,
    TokenPolicy,
    Vehicle,
    WeakPassword,
    normalize_email,
)
from .tokens import MAX_TOKEN_LENGTH, new_token, token_hash
from .unit import AccountsUnit, AccountsUnits

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _issue_token(uow: AccountsUnit, account_id: str, at: datetime) -> str:
    token = new_token()
    uow.accounts.add_token(token_hash(token), account_id, at)
    return token


def _create(units: AccountsUnits, account: Account) -> tuple[Account, str]:
    with units() as uow:
        uow.accounts.add(account)
        token = _issue_token(uow, account.id, account.created_at)
        uow.commit()
    account.email = normalize_email(account.email)
    return account, token


def check_new_password(password: str, *, email: str, name: str) -> None:
    """Raises WeakPassword when a chosen password breaks the policy (accounts.password_policy)."""
    reason = password_policy.weakness(password, email=email, name=name)
    if reason is not None:
        raise WeakPassword(reason)


def sign_up_rider(
    units: AccountsUnits, *, name: str, email: str, password: str, phone: str | None = None,
    now: Clock = utc_now,
) -> tuple[Account, str]:
    """A new rider and their first token. Raises WeakPassword, DuplicateEmail."""
    check_new_password(password, email=email, name=name)
    account = Account(
        id=new_id(), role=Role.rider, name=name, email=normalize_email(email),
        password_hash=passwords.hash_password(password), created_at=now(), phone=phone,
    )
    return _create(units, account)


def sign_up_driver(
    units: AccountsUnits, *, name: str, email: str, password: str, vehicle: Vehicle,
    phone: str | None = None, now: Clock = utc_now,
) -> tuple[Account, str]:
    """A new driver with their vehicle, and their first token. Raises WeakPassword,
    DuplicateEmail."""
    check_new_password(password, email=email, name=name)
    account = Account(
        id=new_id(), role=Role.driver, name=name, email=normalize_email(email),
        password_hash=passwords.hash_password(password), created_at=now(), phone=phone,
        vehicle=vehicle,
    )
    return _create(units, account)


def log_in(
    units: AccountsUnits, email: str, password: str, *, now: Clock = utc_now
) -> tuple[Account, str]:
    """A new token for the right password. Raises InvalidCredentials for a wrong password and
    for an unknown email alike (same message, same time spent)."""
    with units(readonly=True) as uow:
        account = uow.accounts.get_by_email(email)
    if account is None:
        passwords.burn_verify_time(password)
        raise InvalidCredentials()
    if not passwords.verify_password(account.password_hash, password):
        raise InvalidCredentials()
    new_hash = (
        passwords.hash_password(password) if passwords.needs_rehash(account.password_hash)
        else None
    )
    with units() as uow:
        current = uow.accounts.get(account.id)
        # The password may have changed between the read and now; the check above was
        # against the old one, so it no longer counts.
        if current is None or current.password_hash != account.password_hash:
            raise InvalidCredentials()
        if new_hash is not None:
            uow.accounts.update_password_hash(account.id, new_hash)
            current.password_hash = new_hash
        token = _issue_token(uow, account.id, now())
        uow.commit()
    return current, token


def authenticate(
    units: AccountsUnits, token: str, *, policy: TokenPolicy = TokenPolicy(),
    now: Clock = utc_now,
) -> Principal | None:
    """The principal a token stands for; None for an unknown, revoked or expired token. A use
    slides the idle expiry, written at most once per `policy.touch_s`. The principal's
    `expires_at` says until when it may be cached."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    digest = token_hash(token)
    with units(readonly=True) as uow:
        session = uow.accounts.session_for(digest)
    if session is None:
        return None
    at = now()
    last_used = session.last_used_at
    if at >= policy.expires_at(session.created_at, last_used):
        return None
    if (at - last_used).total_seconds() >= policy.touch_s:
        with units() as uow:
            uow.accounts.touch_token(digest, at)
            uow.commit()
        last_used = at
    return replace(session.principal,
                   expires_at=policy.expires_at(session.created_at, last_used))


def revoke(units: AccountsUnits, token: str, *, now: Clock = utc_now) -> None:
    """Revoke a token (log out). Revoking an unknown or revoked token is a no-op."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return
    with units() as uow:
        uow.accounts.revoke_token(token_hash(token), now())
        uow.commit()


def revoke_all(units: AccountsUnits, account_id: str, *, now: Clock = utc_now) -> int:
    """Revoke every token of the account ("log out everywhere"); how many were live."""
    with units() as uow:
        count = uow.accounts.revoke_account_tokens(account_id, now())
        uow.commit()
    return count


def create_service(units: AccountsUnits, name: str, *, now: Clock = utc_now) -> str:
    """A service account (fleet gateway, simulator) and its token. Services have no email
    or password of their own; the reserved `.invalid` domain keeps the email column unique."""
    account_id = new_id()
    account = Account(
        id=account_id, role=Role.service, name=name, email=f"{account_id}@service.invalid",
        password_hash=UNUSABLE_PASSWORD, created_at=now(),
    )
    return _create(units, account)[1]


def create_admin(units: AccountsUnits, email: str, *, now: Clock = utc_now) -> str:
    """A token for the admin with this email, creating the admin if needed. Raises
    DuplicateEmail when the email belongs to a rider, driver or service."""
    email = normalize_email(email)
    with units() as uow:
        existing = uow.accounts.get_by_email(email)
        if existing is not None:
            if existing.role != Role.admin:
                raise DuplicateEmail(email)
            token = _issue_token(uow, existing.id, now())
        else:
            account = Account(
                id=new_id(), role=Role.admin, name=email[:100], email=email,
                password_hash=UNUSABLE_PASSWORD, created_at=now(),
            )
            uow.accounts.add(account)
            token = _issue_token(uow, account.id, account.created_at)
        uow.commit()
    return token


def profile(units: AccountsUnits, account_id: str) -> Account:
    """The account, with its vehicle and rating. Raises AccountNotFound."""
    with units(readonly=True) as uow:
        account: Account | None = uow.accounts.get(account_id)
    if account is None:
        raise AccountNotFound(account_id)
    return account
