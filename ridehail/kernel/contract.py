"""The import contract, checked over the source with `ast` (so lazy imports inside functions and
`TYPE_CHECKING` imports count as much as the ones at the top):

- no import cycle among the project's modules;
- the kernel (`ridehail.kernel`) imports nothing of ours outside itself;
- only the wiring imports the wiring (`ridehail` outside the kernel): no domain package, no
  simulator module, no kernel module;
- the domain packages point one way: geoindex <- dispatch -> trips -> accounts; roads stands
  alone (the simulator drives along its routes).

`python -m ridehail.kernel.contract` prints the violations and exits 1 when there are any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGES = ("ridehail", "accounts", "trips", "dispatch", "geoindex", "roads", "simulator")
KERNEL = "ridehail.kernel"
# What each top-level package may import besides itself and the kernel.
ALLOWED: dict[str, set[str]] = {
    "geoindex": set(),
    "roads": set(),  # road routing: a Router is dispatch's ETA model through the wiring
    "accounts": set(),
    "trips": {"accounts"},
    "dispatch": {"geoindex", "trips", "accounts"},
    # The simulator drives the engine's public facade (engine mode) or the HTTP API.
    "simulator": {"dispatch", "geoindex", "trips", "roads"},
}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            if "static" in path.parts or "node_modules" in path.parts:
                continue
            found[module_name(root, path)] = path
    return found


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports, wherever in the file the import statement sits."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule, not the package's other names.
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
            targets = subs if len(subs) == len(node.names) else [mod, *subs]
        for t in targets:
            owner = _owner(t, modules)
            if owner is not None and owner != name:
                out.add(owner)
    return out


def graph(root: Path) -> dict[str, set[str]]:
    modules = find_modules(root)
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(g):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(g[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in g:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def layer(module: str) -> str:
    if module == KERNEL or module.startswith(KERNEL + "."):
        return "kernel"
    top = module.split(".")[0]
    return "wiring" if top == "ridehail" else top


def violations(g: dict[str, set[str]]) -> list[str]:
    out = [f"import cycle: {' -> '.join(c)}" for c in cycles(g)]
    for mod in sorted(g):
        mine = layer(mod)
        for dep in sorted(g[mod]):
            theirs = layer(dep)
            if theirs == mine or theirs == "kernel" or mine == "wiring":
                continue
            if mine == "kernel":
                out.append(f"{mod} imports {dep}: the kernel imports nothing of ours")
            elif theirs == "wiring":
                out.append(f"{mod} imports {dep}: nothing imports the wiring")
            elif theirs not in ALLOWED.get(mine, set()):
                out.append(f"{mod} imports {dep}: {mine} may not depend on {theirs}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[2]
    found = violations(graph(root))
    for line in found:
        print(line)
    print(f"import contract: {len(found)} violation(s)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
