from __future__ import annotations

import pytest

from ridehail.settings import Settings, SettingsError


def test_the_fallback_method_depends_on_the_mode() -> None:
    assert Settings.from_env(env={}).fallback_payment_token == "tok_ok"  # embedded demo
    scaled = {"RIDEHAIL_REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert Settings.from_env(env=scaled).fallback_payment_token is None
    none = {"RIDEHAIL_DEFAULT_PAYMENT_TOKEN": "none"}
    assert Settings.from_env(env=none).fallback_payment_token is None


@pytest.mark.parametrize(("name", "value"), [
    ("RIDEHAIL_COMMISSION_BPS", "10001"), ("RIDEHAIL_COMMISSION_BPS", "-1"),
    ("RIDEHAIL_PAYMENT_PROVIDER", "stripe"), ("RIDEHAIL_DEFAULT_PAYMENT_TOKEN", "visa"),
    ("RIDEHAIL_PAYMENT_RETRY_BASE_S", "nan"), ("RIDEHAIL_PAYMENT_MAX_RETRIES", "-2"),
])
def test_bad_payment_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env={name: value})
