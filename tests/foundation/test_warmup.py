"""`ridehail.warmup` compiles (or loads) every numba kernel a server or the simulator calls, so
no request pays for a compile: after it, a run of the engine through both dispatch policies
adds no compiled version to any kernel of the project. In a fresh interpreter, because the
kernels are process-wide and other tests would have compiled them already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import importlib, json, pkgutil
    from numba.core.registry import CPUDispatcher
    from ridehail.warmup import warm_up

    warm_up()
    kernels = {}
    for pkg in ("geoindex", "dispatch", "trips", "simulator", "ridehail"):
        for info in pkgutil.iter_modules(importlib.import_module(pkg).__path__):
            mod = importlib.import_module(f"{pkg}.{info.name}")
            for name, value in vars(mod).items():
                if isinstance(value, CPUDispatcher) and value.__module__ == mod.__name__:
                    kernels[f"{mod.__name__}.{name}"] = value
    before = {name: len(k.overloads) for name, k in kernels.items()}

    from ridehail.bootstrap import build_sim_engine
    from simulator.engine_mode import EngineSimulation
    from simulator.scenario import SimConfig, prepare
    for policy in ("greedy", "batched"):
        cfg = SimConfig(drivers=60, duration_s=300.0, demand_rate=600.0, policy=policy, seed=2)
        EngineSimulation(prepare(cfg), build_sim_engine).run()
    print(json.dumps({"kernels": len(kernels), "compiled_after_warm_up": sorted(
        name for name, k in kernels.items() if len(k.overloads) != before[name])}))
""")


def test_after_the_warm_up_no_kernel_compiles_in_a_run() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["kernels"] > 20  # the scan found the project's kernels
    assert doc["compiled_after_warm_up"] == []


def test_cached_kernels_are_dropped_when_a_file_holding_kernels_changes(tmp_path: Path) -> None:
    """numba's cache checks a kernel's own file only; a change to a callee's file (another
    module) must drop the whole cache, and an unchanged checkout must keep it."""
    from ridehail.warmup import drop_stale_kernels

    (tmp_path / "geoindex" / "__pycache__").mkdir(parents=True)
    (tmp_path / "trips" / "__pycache__").mkdir(parents=True)
    callee = tmp_path / "geoindex" / "kernels.py"
    callee.write_text("@njit\ndef scan(): pass\n")
    (tmp_path / "geoindex" / "plain.py").write_text("x = 1\n")
    cached = [tmp_path / "geoindex" / "__pycache__" / "quadtree.qt_search-98.py311.nbi",
              tmp_path / "trips" / "__pycache__" / "fares._measure_kernel-2.py311.1.nbc"]

    def cache() -> None:
        for path in cached:
            path.write_bytes(b"compiled")

    cache()
    assert drop_stale_kernels(tmp_path) == 2  # no fingerprint yet: whatever is there goes
    cache()
    assert drop_stale_kernels(tmp_path) == 0 and all(p.exists() for p in cached)
    (tmp_path / "geoindex" / "plain.py").write_text("x = 2\n")  # holds no kernel
    assert drop_stale_kernels(tmp_path) == 0
    callee.write_text("@njit\ndef scan(): return 1\n")  # only the callee changed
    assert drop_stale_kernels(tmp_path) == 2 and not any(p.exists() for p in cached)
