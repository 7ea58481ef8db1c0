"""The CLI fails clearly: a taken port, a misspelled RIDEHAIL_* variable, and `simulate`
writes its report under var/ (git-ignored), not into the working tree."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ridehail.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_on_a_taken_port_fails_with_one_line(taken_port: int, tmp_path: Path) -> None:
    env = {**os.environ, "RIDEHAIL_PORT": str(taken_port), "RIDEHAIL_HOST": "127.0.0.1",
           "RIDEHAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
           "RIDEHAIL_VAR_DIR": str(tmp_path)}
    env.pop("RIDEHAIL_REDIS_URL", None)
    proc = subprocess.run([sys.executable, "-m", "ridehail.cli", "serve"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{taken_port}" in lines[0] and "already in use" in lines[0]
    assert "serving on" not in proc.stderr
    assert not (tmp_path / "r.db").exists()  # it stopped before touching the database


def test_a_misspelled_variable_warns_on_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIDEHAIL_PROT", "9000")
    res = CliRunner().invoke(main, ["db", "--help"])
    assert res.exit_code == 0
    assert ("ridehail: warning: RIDEHAIL_PROT is not a ridehail setting and is ignored; "
            "did you mean RIDEHAIL_PORT?") in res.stderr


def test_simulate_writes_under_var_by_default(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("RIDEHAIL_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["simulate", "--drivers", "5", "--duration", "2m",
                                    "--demand-rate", "60", "--no-progress"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert Path(out["report"]) == tmp_path / "var" / "simulation" / "report.json"
    assert (tmp_path / "var" / "simulation" / "report.html").is_file()
    assert not (tmp_path / "simulation").exists()
