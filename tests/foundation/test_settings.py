from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ridehail.settings import Settings, SettingsError, env_names, unknown_env_warnings

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
        ({"RIDEHAIL_BATCH_HOLD_S": "-1"}, "RIDEHAIL_BATCH_HOLD_S"),
        ({"RIDEHAIL_BATCH_ETA_CAP_S": "inf"}, "RIDEHAIL_BATCH_ETA_CAP_S"),
        ({"RIDEHAIL_BATCH_ETA_CAP_GROWTH": "nan"}, "RIDEHAIL_BATCH_ETA_CAP_GROWTH"),
        ({"RIDEHAIL_BATCH_FORWARD_S": "-5"}, "RIDEHAIL_BATCH_FORWARD_S"),
    ],
)
def test_bad_setting_names_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env=env)


def test_defaults_are_embedded() -> None:
    s = Settings.from_env(env={})
    assert not s.scaled and s.is_sqlite and s.broker_url == "ridehail-filesystem://"
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


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("RIDEHAIL_PROT", "RIDEHAIL_PORT"), ("RIDEHAIL_DATABSE_URL", "RIDEHAIL_DATABASE_URL"),
     ("RIDEHAIL_REDIS", "RIDEHAIL_REDIS_URL"), ("RIDEHAIL_DATADIR", "RIDEHAIL_DATA_DIR")],
)
def test_unknown_variable_warns_with_the_closest_known_one(typo: str, meant: str) -> None:
    [line] = unknown_env_warnings({typo: "1", "RIDEHAIL_PORT": "9000", "HOME": "/"})
    assert line.startswith(f"{typo} is not a ridehail setting")
    assert line.endswith(f"did you mean {meant}?")


def test_variables_the_project_reads_do_not_warn() -> None:
    # Every Settings field, plus the ones read elsewhere (the tests' screenshot switch).
    env = {name: "x" for name in env_names()}
    assert {"RIDEHAIL_DATABASE_URL", "RIDEHAIL_REDIS_URL", "RIDEHAIL_DATA_DIR",
            "RIDEHAIL_REFRESH_SCREENSHOTS"} <= set(env)
    assert unknown_env_warnings(env) == []
    assert unknown_env_warnings({"OTHER_PROT": "1"}) == []  # not ours


def test_an_unrelated_unknown_variable_still_warns() -> None:
    [line] = unknown_env_warnings({"RIDEHAIL_ZZZZ": "1"})
    assert "RIDEHAIL_ZZZZ is not a ridehail setting" in line and "did you mean" not in line


def test_data_dir_is_a_setting_defaulting_to_the_repository_data(tmp_path: Path) -> None:
    assert Settings.from_env(env={}).data_dir == ROOT / "data"
    assert Settings.from_env(env={"RIDEHAIL_DATA_DIR": str(tmp_path)}).data_dir == tmp_path
    with pytest.raises(SettingsError, match="RIDEHAIL_DATA_DIR"):
        Settings.from_env(env={"RIDEHAIL_DATA_DIR": str(tmp_path / "missing")})


def test_the_debug_map_is_public_by_default_only_on_loopback() -> None:
    def public(**kw: object) -> bool:
        return Settings.from_env(env={}, **kw).debug_map_public

    assert public(host="127.0.0.1") and public(host="localhost") and public(host="::1")
    assert not public(host="0.0.0.0") and not public(host="192.0.2.7")
    assert not public(host="api.example.com")
    assert public(host="0.0.0.0", debug_public=True)  # said explicitly
    assert not public(host="127.0.0.1", debug_public=False)


def test_embedded_worker_concurrency_is_bounded() -> None:
    assert Settings.from_env(env={}).embedded_worker_concurrency >= 4
    with pytest.raises(SettingsError, match="RIDEHAIL_EMBEDDED_WORKER_CONCURRENCY"):
        Settings.from_env(env={"RIDEHAIL_EMBEDDED_WORKER_CONCURRENCY": "0"})


def test_the_demo_speed_is_a_time_lapse_within_bounds() -> None:
    assert Settings.from_env(env={}).demo_speed > 1  # rides complete within the first minute
    for bad in ("0", "-1", "61", "nan"):
        with pytest.raises(SettingsError, match="RIDEHAIL_DEMO_SPEED"):
            Settings.from_env(env={"RIDEHAIL_DEMO_SPEED": bad})


def test_the_demo_turns_off_what_its_fleet_would_trip_unless_the_environment_says() -> None:
    from ridehail.cli import demo_defaults

    settings = Settings.from_env(env={})
    changes, notes = demo_defaults(settings, {})
    # A 6x time-lapse would teach the live correction a city 6x faster: it is off.
    assert changes == {"rate_limit_enabled": False, "eta_live_half_life_s": 0.0}
    assert any("correction is off" in n for n in notes)
    changes, _ = demo_defaults(settings, {"RIDEHAIL_ETA_LIVE_HALF_LIFE_S": "3600",
                                          "RIDEHAIL_RATE_LIMIT_ENABLED": "true"})
    assert changes == {}
    real_time = Settings.from_env(env={"RIDEHAIL_DEMO_SPEED": "1"})
    assert "eta_live_half_life_s" not in demo_defaults(real_time, {})[0]
    no_fleet = Settings.from_env(env={"RIDEHAIL_DEMO_DRIVERS": "0"})
    assert "eta_live_half_life_s" not in demo_defaults(no_fleet, {})[0]
