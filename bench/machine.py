"""What machine a benchmark ran on, with a yardstick of its speed.

The development machines are shared virtual machines and their speed varies: the same commit
has given 110x and 50x real time on `bench/simulate.py` on different days, and on one day the
yardstick below measured 4.5-4.8 on one virtual CPU and 2.5-2.8 on the other, then 2.6 on both
minutes later (the host's other tenants). Each benchmark's JSON therefore carries, besides the
cores and the load average, `python_mops`: millions of iterations per second of a fixed loop of
the work our hot paths do (integer and float arithmetic, dict gets and sets, attribute reads, a
call), the best of five runs of about 0.1 s each, on each CPU in turn (`python_mops_per_cpu`)
and their mean. Figures from two runs compare when their yardsticks do; otherwise re-run the
old commit back to back.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path
from typing import Any

ROUNDS = 5
ITERATIONS = 200_000


class _Row:
    __slots__ = ("lat", "lng")

    def __init__(self, lat: float, lng: float) -> None:
        self.lat = lat
        self.lng = lng


def _step(row: _Row, k: int) -> float:
    return row.lat * 0.5 + row.lng + k


def _loop(n: int) -> float:
    table: dict[int, float] = {}
    row = _Row(40.75, -73.98)
    total = 0.0
    for i in range(n):
        k = i & 1023
        total += table.get(k, 0.0) + _step(row, k)
        table[k] = total * 1e-9
    return total


def per_cpu() -> list[float]:
    """`python_mops` on each CPU this process may run on (Linux: pinned to each in turn)."""
    if not hasattr(os, "sched_getaffinity"):
        return [python_mops()]
    allowed = os.sched_getaffinity(0)
    out = []
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})
            out.append(python_mops())
    finally:
        os.sched_setaffinity(0, allowed)
    return out


def python_mops(rounds: int = ROUNDS, iterations: int = ITERATIONS) -> float:
    """Millions of `_loop` iterations per second, the best of `rounds`."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        _loop(iterations)
        best = min(best, time.perf_counter() - started)
    return round(iterations / best / 1e6, 3)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(load_average_at_start: list[float] | None = None) -> dict[str, Any]:
    """The `machine` block of a benchmark's JSON: run it before the benchmark's own load."""
    load = load_average_at_start if load_average_at_start is not None else \
        [round(x, 2) for x in os.getloadavg()]
    cpus = per_cpu()
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "cpu": cpu_model(),
            "load_average_at_start": load, "python_mops": round(sum(cpus) / len(cpus), 3),
            "python_mops_per_cpu": cpus,
            "note": "python_mops: bench/machine.py's yardstick; compare figures across runs "
                    "only where it is about the same"}


# --- CPU used while a benchmark ran (Linux, /proc) ------------------------------------------

def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat; the time the
    hypervisor gave the host's other tenants instead (steal) included."""
    return machine_cpu_s()[0]


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from one read of /proc/stat:
    `machine_busy_s`, and the part of it the cores were ready to run but the hypervisor ran
    another tenant (a busy host, seen from inside)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, steal / tick


if __name__ == "__main__":
    import json

    print(json.dumps(describe(), indent=2))
