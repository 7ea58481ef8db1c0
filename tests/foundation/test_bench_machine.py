"""The benchmarks' machine yardstick (bench/machine.py): it measures every CPU the process may
run on, and leaves the process free to run on all of them again."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.machine import describe  # noqa: E402


def test_the_yardstick_measures_each_cpu_and_restores_the_affinity() -> None:
    allowed = os.sched_getaffinity(0)
    doc = describe()
    assert os.sched_getaffinity(0) == allowed
    assert len(doc["python_mops_per_cpu"]) == len(allowed)
    assert all(m > 0 for m in doc["python_mops_per_cpu"])
    assert doc["python_mops"] == pytest.approx(
        sum(doc["python_mops_per_cpu"]) / len(allowed), abs=1e-3)
