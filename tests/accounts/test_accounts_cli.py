"""`ridehail accounts create-service` and `create-admin` print tokens that authenticate."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from accounts import service
from accounts.model import Principal, Role
from ridehail.cli import main
from ridehail.kernel.db import make_engine
from ridehail.units import sql_uow_factory


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("RIDEHAIL_DATABASE_URL", url)
    monkeypatch.setenv("RIDEHAIL_LOG_LEVEL", "WARNING")
    return url


def _principal(url: str, token: str) -> Principal | None:
    engine = make_engine(url)
    try:
        return service.authenticate(sql_uow_factory(engine), token)
    finally:
        engine.dispose()


def test_create_service_prints_a_token_that_authenticates(db_url: str) -> None:
    result = CliRunner().invoke(main, ["accounts", "create-service", "fleet-gateway"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    principal = _principal(db_url, token)
    assert principal is not None and principal.role is Role.service


def test_create_admin_prints_a_token_and_refuses_a_rider_email(db_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["accounts", "create-admin", "ops@example.com"])
    assert result.exit_code == 0, result.output
    principal = _principal(db_url, result.output.strip())
    assert principal is not None and principal.role is Role.admin

    engine = make_engine(db_url)
    service.sign_up_rider(sql_uow_factory(engine), name="R", email="r@example.com",
                          password="plain but long enough")
    engine.dispose()
    refused = runner.invoke(main, ["accounts", "create-admin", "R@example.com"])
    assert refused.exit_code == 1
    bad = runner.invoke(main, ["accounts", "create-admin", "not an email"])
    assert bad.exit_code == 2
