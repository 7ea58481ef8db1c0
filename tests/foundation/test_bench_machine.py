"""The benchmarks' machine yardstick (bench/machine.py): it measures every CPU the process may
run on, and leaves the process free to run on all of them again. And the CPU accounting the
benchmarks report where a phase's CPU went with: a process's own, the machine's."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.machine import cpu_s, describe, machine_busy_s, machine_cpu_s  # noqa: E402


def test_the_yardstick_measures_each_cpu_and_restores_the_affinity() -> None:
    allowed = os.sched_getaffinity(0)
    doc = describe()
    assert os.sched_getaffinity(0) == allowed
    assert len(doc["python_mops_per_cpu"]) == len(allowed)
    assert all(m > 0 for m in doc["python_mops_per_cpu"])
    assert doc["python_mops"] == pytest.approx(
        sum(doc["python_mops_per_cpu"]) / len(allowed), abs=1e-3)


def test_cpu_s_counts_what_a_process_burned_and_the_machine_saw_it() -> None:
    me = [os.getpid()]
    before, busy_before, own = cpu_s(me), machine_busy_s(), time.process_time()
    while time.process_time() - own < 0.3:  # burn 0.3 s of this process's CPU
        pass
    burned = cpu_s(me) - before
    assert 0.2 <= burned <= 0.5  # clock ticks: 10 ms each
    assert machine_busy_s() - busy_before >= burned - 0.05
    assert cpu_s([2**22 + 12345]) == 0  # no such process: nothing, not an error
    busy, steal = machine_cpu_s()
    assert 0 <= steal <= busy
