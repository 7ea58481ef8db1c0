"""The lock files (issue 16): every dependency of pyproject.toml pinned, with hashes, at a
version its specifier allows; the image's runtime lock agrees with the dev lock the tests run
on; and `make` (so CI, through `.ci/run` -> `make test`) installs from the lock, not from the
index's newest releases."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    out: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", text):
        m = PIN.match(block)
        if m:
            assert "--hash=sha256:" in block, f"{name}: {m.group(1)} has no hash"
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def project() -> dict[str, list[Requirement]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"runtime": [Requirement(r) for r in data["dependencies"]],
            "dev": [Requirement(r) for r in data["optional-dependencies"]["dev"]]}


@pytest.mark.parametrize(("lock", "kinds"), [("requirements.lock", ("runtime",)),
                                             ("requirements-dev.lock", ("runtime", "dev"))])
def test_every_dependency_is_pinned_within_its_specifier(lock: str, kinds: tuple[str, ...]
                                                         ) -> None:
    pinned = pins(lock)
    stale = []
    for kind in kinds:
        for req in project()[kind]:
            version = pinned.get(canonicalize_name(req.name))
            if version is None or not req.specifier.contains(version, prereleases=True):
                stale.append(f"{req} (locked: {version})")
    assert not stale, f"{lock} is out of date, run `make lock`: {stale}"


def test_the_runtime_lock_is_the_dev_locks_subset() -> None:
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {n: (v, dev.get(n)) for n, v in runtime.items() if dev.get(n) != v} == {}


def test_make_installs_from_the_lock() -> None:
    if shutil.which("make") is None:
        pytest.skip("needs make")
    plan = subprocess.run(["make", "-n", "-B", ".venv/.installed-stamp"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    installs = [line for line in plan.splitlines() if "pip install" in line
                and "--upgrade pip" not in line]
    assert any("--require-hashes" in line and "-r requirements-dev.lock" in line
               for line in installs)
    # Anything else it installs brings no dependency of its own from the index.
    assert all("--no-deps" in line for line in installs), installs
