"""`/metrics` with several API processes (`ridehail serve --workers 2`, issue 16): whichever
process answers shows the counters and histograms summed over both, the process and GC
figures of each live process, and a killed process's live gauges leave while its counts stay.

Which process answers is forced, not guessed: both accept from one listening socket, so while
one is stopped (SIGSTOP) every new connection goes to the other."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_http

from .conftest import Cluster, Proc, wait_until

pytestmark = pytest.mark.slow

HEALTH = ("ridehail_http_requests_total",
          {"method": "GET", "endpoint": "/health", "status": "200"})


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    # A new connection each time (no pooled keep-alive): the kernel hands it to a process
    # that is running.
    r = requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10)
    assert r.status_code == 200, r.text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          labels: dict[str, str]) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def pids_of(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str
            ) -> set[int]:
    return {int(dict(labels)["pid"]) for (n, labels) in samples if n == name}


def children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(p) for p in (task / "children").read_text().split()}
    return out


def all_stopped(pid: int) -> bool:
    """Every thread of `pid` is stopped (state T in /proc): SIGSTOP takes effect a moment
    after kill() returns, and a thread still running then (its acceptor) can take a
    connection and freeze with it unanswered."""
    states = [(task / "stat").read_text().rsplit(")", 1)[1].split()[0]
              for task in Path(f"/proc/{pid}/task").iterdir()]
    return all(state in ("T", "t") for state in states)


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: all_stopped(pid), 10, f"process {pid} stopped", interval=0.002)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def health(url: str, n: int) -> None:
    for _ in range(n):
        r = requests.get(f"{url}/health", headers={"Connection": "close"}, timeout=10)
        assert r.status_code == 200


def start_two(cluster: Cluster, extra: dict[str, str] | None = None
              ) -> tuple[Proc, list[int]]:
    api = cluster.spawn(["serve", "--workers", "2"], "api", extra)
    try:
        wait_http(api.url + "/health", timeout=90, proc=api.proc)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{api.output()}") from None
    # Each process copies its process figures into the shared files as it starts.
    def both() -> set[int] | None:
        pids = pids_of(scrape(api.url), "process_start_time_seconds")
        return pids if len(pids) == 2 else None

    pids = wait_until(both, 60, "both API processes in /metrics")
    assert pids <= children(api.proc.pid), "the pids are the supervisor's API processes"
    return api, sorted(pids)


def test_either_process_shows_both_processes_counts(make_cluster: object) -> None:
    cluster = make_cluster()  # type: ignore[operator]
    api, (a, b) = start_two(cluster)
    shared = Path(dict(line.split("=", 1) for line in Path(f"/proc/{a}/environ").read_text()
                       .split("\0") if "=" in line)["PROMETHEUS_MULTIPROC_DIR"])
    assert shared.is_dir() and shared.stat().st_mode & 0o077 == 0, "a private directory"

    before = scrape(api.url)
    base = value(before, *HEALTH)
    base_count = value(before, "ridehail_http_request_duration_seconds_count",
                       {"method": "GET", "endpoint": "/health"})
    with stopped(b):
        health(api.url, 7)  # all answered by a
    with stopped(a):
        health(api.url, 5)  # all answered by b
        from_b = scrape(api.url)
    with stopped(b):
        from_a = scrape(api.url)
    for seen in (from_a, from_b):
        assert value(seen, *HEALTH) == base + 12
        assert value(seen, "ridehail_http_request_duration_seconds_count",
                     {"method": "GET", "endpoint": "/health"}) == base_count + 12
        # The process and GC collectors: each live process's gauges, the counters summed.
        assert pids_of(seen, "process_resident_memory_bytes") == {a, b}
        assert all(value(seen, "process_resident_memory_bytes", {"pid": str(p)}) > 10e6
                   for p in (a, b))
        assert value(seen, "process_cpu_seconds_total", {}) > 0
        assert any(n == "python_gc_collections_total" for n, _ in seen)
        # A live-sum gauge: one series for the whole server, no pid.
        assert ("ridehail_edge_connections", frozenset({("kind", "ws")})) in seen

    os.kill(b, signal.SIGKILL)  # the supervisor marks it dead
    def without_b() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        seen = scrape(api.url)
        return seen if pids_of(seen, "process_resident_memory_bytes") == {a} else None

    after = wait_until(without_b, 30, "the dead process's gauges gone")
    assert value(after, *HEALTH) >= base + 12, "a dead process's counts stay in the sums"
    api.stop()
    assert not shared.exists(), "the supervisor removes its metrics directory"


def test_a_given_directory_is_emptied_of_a_previous_runs_files(make_cluster: object,
                                                               tmp_path: Path) -> None:
    given = tmp_path / "prom"
    given.mkdir()
    stale = MmapedDict(str(given / "counter_4000000.db"))  # a process of an earlier run
    stale.write_value(mmap_key("ridehail_http_requests_total", "ridehail_http_requests_total",
                               ("method", "endpoint", "status"), ("GET", "/health", "200"),
                               "HTTP requests"), 1000.0, 0.0)
    stale.close()
    cluster = make_cluster()  # type: ignore[operator]
    api, _pids = start_two(cluster, {"PROMETHEUS_MULTIPROC_DIR": str(given)})
    assert value(scrape(api.url), *HEALTH) < 1000
    assert not (given / "counter_4000000.db").exists()
    api.stop()
    assert given.is_dir() and not list(given.glob("*.db")), "emptied at the end, not removed"
