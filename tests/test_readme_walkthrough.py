"""The README's curl walkthrough, run from README.md itself (so the two cannot drift) against
`ridehail demo` with its simulated fleet on: three times in a row, each run completes its ride
and leaves its driver offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, Server, start_server
from tests.nearby_ids import opaque_ids

pytestmark = pytest.mark.slow

SECTION = "## One ride, step by step, with curl"
PICKUP = (40.7580, -73.9855)  # the walkthrough's pickup


def walkthrough_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end >= 0 else None]
    return re.findall(r"^```sh\n(.*?)^```", section, re.S | re.M)


def run_bash(script: str, url: str) -> subprocess.CompletedProcess[str]:
    # `set -e`: the first failed call stops the run (its problem+json is on stderr). The venv's
    # python3 comes first on PATH, as it does for someone who ran `make demo`.
    env = {**os.environ, "API": url,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], env=env,
                          capture_output=True, text=True, timeout=120)


def nearby(url: str, token: str, vehicle_class: str) -> list[str]:
    r = requests.get(f"{url}/v1/vehicles/nearby", headers={"Authorization": f"Bearer {token}"},
                     params={"lat": PICKUP[0], "lng": PICKUP[1], "radius_m": 50_000,
                             "limit": 100, "vehicle_class": vehicle_class}, timeout=10)
    r.raise_for_status()
    return [f["id"] for f in r.json()["features"]]


def wait_for(what: str, check: object, timeout: float = 60.0) -> None:
    """Poll `check()` until it is true (the server's state is the event), or fail."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """`ridehail demo` on SQLite in a temporary folder, once its fleet is on the map; with a
    rider's token for looking around."""
    tmp = tmp_path_factory.mktemp("demo")
    # The watcher surveys the whole demo fleet: the nearby radius cap is raised for it.
    server = start_server({"RIDEHAIL_DATABASE_URL": f"sqlite:///{tmp / 'ridehail.db'}",
                           "RIDEHAIL_VAR_DIR": str(tmp),
                           "RIDEHAIL_NEARBY_MAX_RADIUS_M": "50000"}, ["demo"])
    try:
        rider = requests.post(f"{server.url}/v1/riders", json={
            "name": "Watcher", "email": "watcher@example.com",
            "password": "correct horse battery"}, timeout=10).json()
        # The fleet signs its 200 drivers up, then they go online: wait for most of them.
        wait_for("the demo fleet online",
                 lambda: len(nearby(server.url, rider["token"], "standard")) >= 100, 120.0)
        yield server, str(rider["token"])
    finally:
        server.stop()


def test_the_walkthrough_has_its_steps() -> None:
    blocks = walkthrough_blocks()
    script = "\n".join(blocks)
    assert len(blocks) >= 8, blocks
    for needed in ("/v1/riders", "/v1/drivers", "/v1/drivers/me/location", "/v1/trips",
                   "our_offer", "/accept", "complete", '{"status": "offline"}'):
        assert needed in script, needed
    assert "jq" not in script  # python3 reads the JSON: nothing to install


def test_a_failed_call_shows_the_problem(demo: tuple[Server, str]) -> None:
    server, _ = demo
    setup = walkthrough_blocks()[0]
    done = run_bash(setup + '\ncall POST /v1/trips "" \'{"pickup": {"lat": 1, "lng": 2}}\'\n'
                    'echo "not reached"\n', server.url)
    assert done.returncode != 0, done.stdout
    assert "not reached" not in done.stdout
    assert "HTTP 401 from POST /v1/trips" in done.stderr, done.stderr
    problem = json.loads(done.stderr.split(": ", 1)[1])
    assert problem["status"] == 401 and problem["title"], problem


def test_the_walkthrough_works_three_times_in_a_row(demo: tuple[Server, str]) -> None:
    server, watcher = demo
    script = "\n".join(walkthrough_blocks())
    script += '\necho "WALKTHROUGH $TRIP_ID $DRIVER_ID $RIDER_TOKEN"\n'
    for run in range(1, 4):
        done = run_bash(script, server.url)
        out = f"run {run}:\n{done.stdout}\n{done.stderr}"
        assert done.returncode == 0, out
        last = done.stdout.strip().splitlines()
        trip_id, driver_id, rider_token = last[-1].split()[1:]
        # The server's answer to step 8 (the driver goes offline) is the line before.
        assert json.loads(last[-2]) == {"status": "offline", "online": False,
                                        "vehicle_class": "xl"}, out
        trip = requests.get(f"{server.url}/v1/trips/{trip_id}", timeout=10,
                            headers={"Authorization": f"Bearer {rider_token}"}).json()
        assert trip["state"] == "completed", (trip, out)
        assert trip["driver_id"] == driver_id, (trip, out)
        # Offline, the driver leaves the map at the next snapshot (well before the 30 s a
        # silent driver would take to go stale).
        # Nearby's ids are opaque per rider (issue 13, item 10): the watcher's for our driver.
        me = requests.get(f"{server.url}/v1/me", timeout=10,
                          headers={"Authorization": f"Bearer {watcher}"}).json()
        wait_for("our driver off the map",
                 lambda driver_id=driver_id, rider_id=me["id"]: not (
                     opaque_ids(rider_id, driver_id) & set(nearby(server.url, watcher, "xl"))),
                 5.0)
