"""What an accounts use case needs of a unit of work: the account repository, typed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from ridehail.kernel.units import Unit

from .model import Account, TokenSession


class AccountRepository(Protocol):
    def add(self, account: Account) -> None: ...

    def get(self, account_id: str) -> Account | None: ...

    def get_by_email(self, email: str) -> Account | None: ...

    def add_token(self, token_hash: str, account_id: str, created_at: datetime) -> None: ...

    def session_for(self, token_hash: str) -> TokenSession | None:
        """The unrevoked token with this hash (expired or not: expiry is the caller's rule)."""
        ...

    def touch_token(self, token_hash: str, at: datetime) -> bool:
        """Move the token's last use forward to `at` (never back); False if unknown/revoked."""
        ...

    def revoke_token(self, token_hash: str, at: datetime) -> bool: ...

    def revoke_account_tokens(self, account_id: str, at: datetime) -> int:
        """Revoke every unrevoked token of the account ("log out everywhere"); how many."""
        ...

    def update_password_hash(self, account_id: str, password_hash: str) -> None: ...

    def add_rating(self, account_id: str, stars: int) -> None: ...


class AccountsUnit(Unit, Protocol):
    accounts: AccountRepository


# Use cases take the factory and open their own units: `with units() as uow:`.
AccountsUnits = Callable[..., AccountsUnit]
