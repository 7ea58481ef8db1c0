from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ridehail.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"RIDEHAIL_DATABASE_URL": "not a url"}, "RIDEHAIL_DATABASE_URL"),
        ({"RIDEHAIL_DATABASE_URL": "mysql://x@y/z"}, "RIDEHAIL_DATABASE_URL"),
        ({"RIDEHAIL_REDIS_URL": "http://example"}, "RIDEHAIL_REDIS_URL"),
        ({"RIDEHAIL_PORT": "eighty"}, "RIDEHAIL_PORT"),
        ({"RIDEHAIL_PORT": "70000"}, "RIDEHAIL_PORT"),
        ({"RIDEHAIL_OFFER_TIMEOUT_S": "nan"}, "RIDEHAIL_OFFER_TIMEOUT_S"),
        ({"RIDEHAIL_WORKER_ID": "5000"}, "RIDEHAIL_WORKER_ID"),
        ({"RIDEHAIL_WORKERS": "3"}, "RIDEHAIL_WORKERS"),
        ({"RIDEHAIL_EMBEDDED_WORKER": "maybe"}, "RIDEHAIL_EMBEDDED_WORKER"),
        ({"RIDEHAIL_SERVICE_AREA": "/nonexistent.geojson"}, "RIDEHAIL_SERVICE_AREA"),
    ],
)
def test_bad_setting_names_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env=env)


def test_defaults_are_embedded() -> None:
    s = Settings.from_env(env={})
    assert not s.scaled and s.is_sqlite and s.broker_url == "filesystem://"
    scaled = Settings.from_env(env={"RIDEHAIL_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert scaled.scaled and scaled.broker_url.startswith("redis://")


def test_cli_refuses_to_start_with_a_malformed_database_url(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ridehail.cli", "serve"],
        env={"RIDEHAIL_DATABASE_URL": "postgresql://:bad:port", "PATH": "/usr/bin:/bin",
             "RIDEHAIL_VAR_DIR": str(tmp_path)},
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "RIDEHAIL_DATABASE_URL" in proc.stderr
