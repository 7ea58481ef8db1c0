"""The memory and SQL account repositories keep the same contract (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accounts.model import (
    Account,
    DuplicateEmail,
    Principal,
    Role,
    Vehicle,
    VehicleClass,
)
from ridehail.kernel.ids import new_id

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make_account(email: str, role: Role = Role.rider, **kw: Any) -> Account:
    return Account(id=new_id(), role=role, name="Someone", email=email, password_hash="h",
                   created_at=T0, **kw)


def test_add_and_get_round_trip(uow_factory: Callable[..., Any], unique_email: Any) -> None:
    email = unique_email().upper()
    vehicle = Vehicle("Kia", "Niro", "XYZ 1", 5, VehicleClass.xl)
    account = make_account(email, Role.driver, phone="+15551234567", vehicle=vehicle)
    uow = uow_factory()
    with uow:
        uow.accounts.add(account)
        uow.commit()
    with uow_factory(readonly=True) as ro:
        got = ro.accounts.get(account.id)
        by_email = ro.accounts.get_by_email(email.title())
    assert got is not None and by_email == got
    assert got.email == email.lower()
    assert got.vehicle == vehicle and got.role is Role.driver
    assert got.created_at == T0 and got.created_at.tzinfo is not None
    assert (got.phone, got.rating_sum, got.rating_count) == ("+15551234567", 0, 0)


def test_unknown_ids_and_emails_are_none(uow_factory: Callable[..., Any]) -> None:
    with uow_factory(readonly=True) as uow:
        assert uow.accounts.get("1") is None
        assert uow.accounts.get("not-a-number") is None
        assert uow.accounts.get(str(2**70)) is None
        assert uow.accounts.get_by_email("nobody@example.com") is None
        assert uow.accounts.session_for("0" * 64) is None


def test_duplicate_email_is_refused_case_insensitively_and_unit_stays_usable(
    uow_factory: Callable[..., Any], unique_email: Any
) -> None:
    email = unique_email()
    first = make_account(email)
    with uow_factory() as uow:
        uow.accounts.add(first)
        uow.commit()
    second = make_account(email.upper(), Role.driver)
    with uow_factory() as uow:
        with pytest.raises(DuplicateEmail):
            uow.accounts.add(second)
        # The failed insert did not poison the transaction (savepoint on PostgreSQL).
        assert uow.accounts.get(first.id) is not None
        uow.commit()
    with uow_factory() as uow:
        assert uow.accounts.get(second.id) is None
        assert uow.accounts.get_by_email(email).id == first.id


def test_tokens_authenticate_until_revoked(
    uow_factory: Callable[..., Any], unique_email: Any
) -> None:
    account = make_account(unique_email(), Role.service)
    h = "a" * 60 + new_id()[-4:]
    with uow_factory() as uow:
        uow.accounts.add(account)
        uow.accounts.add_token(h, account.id, T0)
        uow.commit()
    with uow_factory(readonly=True) as uow:
        session = uow.accounts.session_for(h)
        assert session is not None
        assert session.principal == Principal(account.id, Role.service, h)
        assert session.created_at == session.last_used_at == T0  # never used yet
    with uow_factory() as uow:
        assert uow.accounts.revoke_token(h, T0 + timedelta(hours=1)) is True
        assert uow.accounts.revoke_token(h, T0 + timedelta(hours=2)) is False
        uow.commit()
    with uow_factory(readonly=True) as uow:
        assert uow.accounts.session_for(h) is None
        assert uow.accounts.revoke_token("b" * 64, T0) is False


def test_password_hash_update_and_atomic_rating(
    uow_factory: Callable[..., Any], unique_email: Any
) -> None:
    account = make_account(unique_email(), Role.driver)
    with uow_factory() as uow:
        uow.accounts.add(account)
        uow.commit()
    with uow_factory() as uow:
        uow.accounts.update_password_hash(account.id, "new-hash")
        uow.accounts.add_rating(account.id, 5)
        uow.accounts.add_rating(account.id, 2)
        uow.commit()
    with uow_factory(readonly=True) as uow:
        got = uow.accounts.get(account.id)
    assert (got.password_hash, got.rating_sum, got.rating_count) == ("new-hash", 7, 2)
    assert got.rating_average == 3.5


def test_uncommitted_unit_leaves_nothing(
    uow_factory: Callable[..., Any], unique_email: Any
) -> None:
    kept = make_account(unique_email())
    with uow_factory() as uow:
        uow.accounts.add(kept)
        uow.accounts.add_token("c" * 64, kept.id, T0)
        uow.commit()
    dropped = make_account(unique_email())
    with pytest.raises(RuntimeError), uow_factory() as uow:
        uow.accounts.add(dropped)
        uow.accounts.add_token("d" * 64, dropped.id, T0)
        uow.accounts.revoke_token("c" * 64, T0)
        uow.accounts.add_rating(kept.id, 4)
        uow.accounts.update_password_hash(kept.id, "changed")
        raise RuntimeError("the service failed half way")
    with uow_factory(readonly=True) as uow:
        assert uow.accounts.get(dropped.id) is None
        assert uow.accounts.get_by_email(dropped.email) is None
        assert uow.accounts.session_for("d" * 64) is None
        assert uow.accounts.session_for("c" * 64) is not None
        got = uow.accounts.get(kept.id)
    assert (got.password_hash, got.rating_count) == ("h", 0)


def test_returned_accounts_are_copies(uow_factory: Callable[..., Any], unique_email: Any) -> None:
    account = make_account(unique_email())
    with uow_factory() as uow:
        uow.accounts.add(account)
        uow.commit()
    account.name = "changed after add"
    with uow_factory() as uow:
        got = uow.accounts.get(account.id)
        got.name = "changed after get"
        assert uow.accounts.get(account.id).name == "Someone"


def test_touch_moves_the_last_use_forward_only(
    uow_factory: Callable[..., Any], unique_email: Any
) -> None:
    account = make_account(unique_email())
    h = "e" * 60 + new_id()[-4:]
    with uow_factory() as uow:
        uow.accounts.add(account)
        uow.accounts.add_token(h, account.id, T0)
        uow.commit()
    with uow_factory() as uow:
        assert uow.accounts.touch_token(h, T0 + timedelta(days=2)) is True
        assert uow.accounts.touch_token(h, T0 + timedelta(days=1)) is False  # never back
        assert uow.accounts.touch_token("f" * 64, T0) is False
        uow.commit()
    with uow_factory(readonly=True) as uow:
        session = uow.accounts.session_for(h)
    assert session is not None and session.created_at == T0
    assert session.last_used_at == T0 + timedelta(days=2)
    with uow_factory() as uow:
        uow.accounts.revoke_token(h, T0 + timedelta(days=3))
        assert uow.accounts.touch_token(h, T0 + timedelta(days=4)) is False  # revoked
        uow.commit()


def test_revoking_all_of_an_account_leaves_other_accounts_alone(
    uow_factory: Callable[..., Any], unique_email: Any
) -> None:
    mine, other = make_account(unique_email()), make_account(unique_email())
    tag = new_id()[-4:]
    hashes = {"1" * 60 + tag: mine, "2" * 60 + tag: mine, "3" * 60 + tag: mine,
              "4" * 60 + tag: other}
    with uow_factory() as uow:
        uow.accounts.add(mine)
        uow.accounts.add(other)
        for h, owner in hashes.items():
            uow.accounts.add_token(h, owner.id, T0)
        uow.accounts.revoke_token("3" * 60 + tag, T0)  # already revoked: not counted
        uow.commit()
    with uow_factory() as uow:
        assert uow.accounts.revoke_account_tokens(mine.id, T0 + timedelta(hours=1)) == 2
        assert uow.accounts.revoke_account_tokens(mine.id, T0 + timedelta(hours=2)) == 0
        assert uow.accounts.revoke_account_tokens("not-a-number", T0) == 0
        uow.commit()
    with uow_factory(readonly=True) as uow:
        live = {h for h in hashes if uow.accounts.session_for(h) is not None}
    assert live == {"4" * 60 + tag}
