"""Password hashing with argon2id. Parameters are the OWASP minimum (19 MiB, 2 passes), which
keeps a hash around 20 ms: slow enough to hurt offline guessing, fast enough for tests."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than today's (rehash on log-in)."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password anyone has")


def burn_verify_time(password: str) -> None:
    """Spend what a real verification costs, so an unknown email answers as slowly as a
    wrong password and response times do not reveal which emails have accounts."""
    verify_password(_dummy_hash(), password)
