"""What the Docker image would hold, without a Docker engine (issue 16): the build context of a
fresh clone, after a developer's `make` has grown it (.venv, var/, node_modules, numba caches,
the vendored assets), filtered by .dockerignore with docker's own matcher (docker-py's
`exclude_paths`, the code `docker build` uses in Python); the Node stage of docker/Dockerfile
run for real (its WORKDIR mapped into a temporary folder, its COPY taken from the context,
its RUN lines through sh: npm ci from web/package-lock.json); and the final stage's COPY
instructions applied to both. The compose file is checked by `docker compose config` where a
compose is installed."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from tests.conftest import ROOT

# Leaflet for the debug map and for the rider and driver apps (web/build.mjs).
VENDORS = ("dispatch/static/debugmap/vendor", "ridehail/static/apps/vendor")


@dataclass
class Stage:
    name: str
    base: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions with their continuation lines joined, grouped by stage."""
    stages: list[Stage] = []
    joined = text.replace("\\\n", " ")
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, args = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            words = args.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, words[0]))
        else:
            stages[-1].steps.append((op, args.strip()))
    return stages


def dockerignore_patterns(context: Path) -> list[str]:
    # As docker-py reads it (docker/api/build.py): stripped lines, no blanks, no comments.
    lines = (context / ".dockerignore").read_text().splitlines()
    return [p for p in (line.strip() for line in lines) if p and not p.startswith("#")]


def build_context(clone: Path) -> set[str]:
    paths = exclude_paths(str(clone), dockerignore_patterns(clone),
                          dockerfile="docker/Dockerfile")
    return {p for p in paths if (clone / p).is_file()}


def copy_args(args: str) -> tuple[str | None, list[str], str]:
    words = shlex.split(args)
    source_stage = None
    while words[0].startswith("--"):
        if words[0].startswith("--from="):
            source_stage = words[0].removeprefix("--from=")
        words.pop(0)
    return source_stage, words[:-1], words[-1]


def copied(files: dict[str, Path], srcs: list[str], dest: str, cwd: str) -> dict[str, Path]:
    """COPY's rules for files and folders: a folder's content lands in `dest`; a file lands in
    `dest` (or in it, when `dest` ends with `/` or several sources are given)."""
    dest = dest if dest.startswith("/") else f"{cwd.rstrip('/')}/{dest}"
    out: dict[str, Path] = {}
    for src in srcs:
        src = src.strip("/") if src not in (".", "./") else ""
        if src in files:
            into = dest.endswith("/") or len(srcs) > 1
            out[f"{dest.rstrip('/')}/{Path(src).name}" if into else dest] = files[src]
            continue
        under = {p: f for p, f in files.items() if not src or p.startswith(src + "/")}
        assert under, f"COPY {src}: nothing in its source"
        for p, f in under.items():
            rest = p[len(src) + 1:] if src else p
            out[f"{dest.rstrip('/')}/{rest}"] = f
    return out


def run_stage(stage: Stage, context: dict[str, Path], root: Path) -> dict[str, Path]:
    """A stage whose RUN lines only use relative paths, run in `root` as its filesystem."""
    cwd = "/"
    for op, args in stage.steps:
        if op == "WORKDIR":
            cwd = args
            (root / cwd.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            source_stage, srcs, dest = copy_args(args)
            assert source_stage is None, "the Node stage copies from the context only"
            for path, src in copied(context, srcs, dest, cwd).items():
                target = root / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
        elif op == "RUN":
            done = subprocess.run(["sh", "-c", args], cwd=root / cwd.lstrip("/"),
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"RUN {args}:\n{done.stdout}{done.stderr}"
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def grown_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone, then what using it leaves behind."""
    if shutil.which("git") is None:
        pytest.skip("needs git")
    clone = tmp_path_factory.mktemp("docker") / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    for junk in (".venv/bin/python", ".venv/lib/python3.11/site-packages/x.py",
                 "var/ridehail.db", "var/broker/q.msg", "geoindex/__pycache__/kernels.nbi",
                 "geoindex/__pycache__/kernels.cpython-311.pyc",
                 "geoindex/__pycache__/kernels.quadtree_nearest-1.py311.nbc",
                 "web/node_modules/leaflet/dist/leaflet.js",
                 *(f"{v}/leaflet.js" for v in VENDORS),
                 "ridehail.egg-info/PKG-INFO", ".pytest_cache/v/cache/lastfailed", ".env",
                 "docker/.env.production"):
        (clone / junk).parent.mkdir(parents=True, exist_ok=True)
        (clone / junk).write_text("a developer's file\n")
    return clone


@pytest.fixture(scope="module")
def image(grown_clone: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> tuple[set[str], dict[str, Path], Stage]:
    if shutil.which("npm") is None:
        pytest.skip("needs npm (the Node stage runs npm ci)")
    context = build_context(grown_clone)
    files = {p: grown_clone / p for p in context}
    stages = parse_dockerfile((grown_clone / "docker/Dockerfile").read_text())
    built = {s.name: run_stage(s, files, tmp_path_factory.mktemp(f"stage-{s.name}"))
             for s in stages[:-1]}
    final = stages[-1]
    held: dict[str, Path] = {}
    cwd = "/"
    for op, args in final.steps:
        if op == "WORKDIR":
            cwd = args
        elif op == "COPY":
            source_stage, srcs, dest = copy_args(args)
            held.update(copied(built[source_stage] if source_stage else files, srcs, dest,
                               cwd))
    return context, held, final


def test_the_context_leaves_out_what_a_checkout_grows(
        image: tuple[set[str], dict[str, Path], Stage]) -> None:
    context, _held, _final = image
    grown = (".venv/", "var/", ".git/", "node_modules/", "__pycache__/", ".egg-info/",
             ".pytest_cache/", *(f"{v}/" for v in VENDORS))
    assert not [p for p in context if any(g in f"/{p}" for g in grown)]
    assert not [p for p in context if p.endswith((".nbi", ".nbc", ".pyc"))]
    assert not [p for p in context if Path(p).name.startswith(".env")], "no secrets"
    for needed in ("pyproject.toml", "README.md", "requirements.lock", "web/package.json",
                   "web/package-lock.json", "ridehail/warmup.py", "migrations/env.py",
                   "ridehail/data/nyc_boroughs.geojson", "docker/Dockerfile"):
        assert needed in context, needed


def test_the_image_holds_the_npm_assets_and_no_checkout_junk(
        image: tuple[set[str], dict[str, Path], Stage]) -> None:
    _context, held, _final = image
    for vendor in VENDORS:
        for asset in ("leaflet.js", "leaflet.css", "images/marker-icon.png"):
            path = f"/app/{vendor}/{asset}"
            assert path in held, path
            assert "a developer's file" not in held[path].read_text(errors="replace")
        assert held[f"/app/{vendor}/leaflet.js"].stat().st_size > 100_000  # the real Leaflet
    assert "/app/ridehail/warmup.py" in held and "/app/ridehail/server.py" in held
    assert not [p for p in held if p.startswith(("/app/.venv", "/app/var/", "/app/.git/"))]


def test_the_image_installs_the_lock_and_is_built_warm(
        image: tuple[set[str], dict[str, Path], Stage]) -> None:
    _context, held, final = image
    assert "/app/requirements.lock" in held
    runs = [(i, args) for i, (op, args) in enumerate(final.steps) if op == "RUN"]
    installs = [args for _i, args in runs if "-r requirements.lock" in args]
    assert installs and all("--require-hashes" in a and "--no-deps" in a for a in installs)
    warm = [i for i, args in runs if "python -m ridehail.warmup" in args]
    last_copy = max(i for i, (op, _a) in enumerate(final.steps) if op == "COPY")
    # After the last COPY: a later one would change the modules' times and void the cache.
    assert warm and warm[0] > last_copy


def compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_the_compose_file_is_valid() -> None:
    compose = compose_command()
    if compose is None:
        pytest.skip("needs docker compose (or docker-compose): neither is installed")
    done = subprocess.run([*compose, "-f", str(ROOT / "docker/compose.yaml"), "config"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for service in ("api", "worker", "beat", "migrate", "postgres", "redis"):
        assert f"  {service}:" in done.stdout
