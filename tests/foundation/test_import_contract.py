"""The import contract (ridehail/kernel/contract.py): no cycles, lazy and TYPE_CHECKING imports
included; the kernel imports nothing of ours; nothing imports the wiring; the domain packages
point one way. `make lint` runs the same check."""

from __future__ import annotations

from pathlib import Path

from ridehail.kernel.contract import graph, violations

ROOT = Path(__file__).resolve().parents[2]


def test_the_project_keeps_the_import_contract() -> None:
    assert violations(graph(ROOT)) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for pkg in ("ridehail", "ridehail/kernel", "accounts", "trips", "dispatch", "geoindex",
                "simulator"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_lazy_import_cycle_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "dispatch/a.py": "from . import b\n",
        "dispatch/b.py": "def f():\n    from .a import x\n",
    })
    assert any("import cycle" in v and "dispatch.a" in v for v in violations(graph(root)))


def test_a_type_checking_import_cycle_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "trips/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from trips.b import B\n",
        "trips/b.py": "import trips.a\n",
    })
    assert any("import cycle" in v for v in violations(graph(root)))


def test_the_kernel_imports_nothing_of_ours(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"ridehail/kernel/x.py": "from trips import model\n",
                            "trips/model.py": ""})
    assert violations(graph(root)) == [
        "ridehail.kernel.x imports trips.model: the kernel imports nothing of ours"]


def test_nothing_imports_the_wiring(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"ridehail/app.py": "", "accounts/x.py": "import ridehail.app\n"})
    assert violations(graph(root)) == [
        "accounts.x imports ridehail.app: nothing imports the wiring"]


def test_domain_packages_point_one_way(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"trips/x.py": "from dispatch import y\n", "dispatch/y.py": ""})
    assert violations(graph(root)) == [
        "trips.x imports dispatch.y: trips may not depend on dispatch"]
