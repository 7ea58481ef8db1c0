"""Account use cases over the memory unit of work: fast, no Flask, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher

from accounts import service
from accounts.model import (
    Account,
    AccountNotFound,
    DuplicateEmail,
    InvalidCredentials,
    Role,
    Vehicle,
    VehicleClass,
)
from accounts.tokens import token_hash
from ridehail.kernel.units import MemoryStore
from ridehail.units import UnitFactory, memory_uow_factory

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def uow(store: MemoryStore) -> UnitFactory:
    return memory_uow_factory(store)


def test_sign_up_rider_then_log_in(uow: UnitFactory) -> None:
    account, token = service.sign_up_rider(
        uow, name="Ada", email="Ada@Example.COM", password="s3cret-pass", now=lambda: T0)
    assert account.email == "ada@example.com" and account.role is Role.rider
    assert account.created_at == T0 and account.password_hash.startswith("$argon2id$")
    assert "s3cret-pass" not in account.password_hash
    principal = service.authenticate(uow, token, now=lambda: T0)
    assert principal is not None and principal.account_id == account.id
    assert principal.token_hash == token_hash(token)

    again, token2 = service.log_in(uow, "ADA@example.com", "s3cret-pass")
    assert again.id == account.id and token2 != token
    with pytest.raises(InvalidCredentials) as wrong:
        service.log_in(uow, "ada@example.com", "wrong-pass")
    with pytest.raises(InvalidCredentials) as unknown:
        service.log_in(uow, "nobody@example.com", "s3cret-pass")
    assert str(wrong.value) == str(unknown.value)


def test_driver_has_vehicle_and_duplicate_email_changes_nothing(
    uow: UnitFactory,
) -> None:
    vehicle = Vehicle("Tesla", "Model Y", "EV 42", 5, VehicleClass.premium)
    driver, _ = service.sign_up_driver(uow, name="Dan", email="dan@example.com",
                                       password="pass-word-1", vehicle=vehicle)
    with pytest.raises(DuplicateEmail):
        service.sign_up_rider(uow, name="Other", email="DAN@example.com",
                              password="ok passphrase")
    assert service.profile(uow, driver.id) == driver
    assert driver.vehicle == vehicle


def test_revoked_token_no_longer_authenticates(uow: UnitFactory) -> None:
    _, token = service.sign_up_rider(uow, name="R", email="r@example.com", password="ok passphrase")
    service.revoke(uow, token)
    assert service.authenticate(uow, token) is None
    service.revoke(uow, token)  # idempotent
    service.revoke(uow, "never-issued")
    assert service.authenticate(uow, "") is None
    assert service.authenticate(uow, "x" * 10_000) is None


def test_service_and_admin_accounts(uow: UnitFactory) -> None:
    token = service.create_service(uow, "fleet gateway")
    principal = service.authenticate(uow, token)
    assert principal is not None and principal.role is Role.service
    admin_token = service.create_admin(uow, "Root@Example.com")
    admin = service.authenticate(uow, admin_token)
    assert admin is not None and admin.role is Role.admin
    # Asking again for the same admin issues another token for the same account.
    admin2 = service.authenticate(uow, service.create_admin(uow, "root@example.com"))
    assert admin2 is not None and admin2.account_id == admin.account_id
    # Neither can log in with a password: they have none.
    with pytest.raises(InvalidCredentials):
        service.log_in(uow, "root@example.com", "!")
    service.sign_up_rider(uow, name="R", email="rider@example.com", password="ok passphrase")
    with pytest.raises(DuplicateEmail):
        service.create_admin(uow, "rider@example.com")


def test_log_in_rehashes_a_hash_made_with_old_parameters(
    uow: UnitFactory, store: MemoryStore
) -> None:
    account, _ = service.sign_up_rider(uow, name="R", email="old@example.com",
                                       password="ok passphrase")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("p" * 8)
    with uow() as unit:
        unit.accounts.update_password_hash(account.id, weak)
        unit.commit()
    logged_in, _ = service.log_in(uow, "old@example.com", "p" * 8)
    stored = service.profile(uow, account.id).password_hash
    assert stored != weak and "m=19456,t=2,p=1" in stored
    assert logged_in.password_hash == stored
    service.log_in(uow, "old@example.com", "p" * 8)  # the new hash verifies too


def test_profile_of_unknown_account(uow: UnitFactory) -> None:
    with pytest.raises(AccountNotFound):
        service.profile(uow, "12345")


def test_a_failing_unit_rolls_back_in_memory(uow: UnitFactory) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), uow() as unit:
        unit.accounts.add(Account(id="77", role=Role.rider, name="n", email="gone@example.com",
                                  password_hash="h", created_at=T0))
        unit.accounts.add_token("e" * 64, "77", T0)
        raise Boom
    with uow() as unit:
        assert unit.accounts.get("77") is None
        assert unit.accounts.get_by_email("gone@example.com") is None
        assert unit.accounts.session_for("e" * 64) is None
    # The email is free again.
    service.sign_up_rider(uow, name="n", email="gone@example.com", password="ok passphrase")
