# Every target works from a fresh clone: it creates .venv and installs the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Every Python package pinned, with hashes: requirements-dev.lock (runtime + dev: make, CI)
# and requirements.lock (runtime: the Docker image), both from pyproject.toml by `make lock`.
LOCK     := requirements.lock
DEV_LOCK := requirements-dev.lock
UV       := uv==0.13.9
UV_FLAGS := --quiet --universal --python-version 3.11 --generate-hashes \
            --custom-compile-command 'make lock'
# Leaflet for the debug map and the web apps comes from npm (web/package-lock.json), never
# from a CDN; `npm run build` (web/build.mjs) copies it into the folders the API serves.
VENDOR  := dispatch/static/debugmap/vendor ridehail/static/apps/vendor

.PHONY: demo test bench lint serve clean web-vendor lock screenshots

$(STAMP): pyproject.toml $(DEV_LOCK) web/package-lock.json web/build.mjs
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check || { echo "make: $(DEV_LOCK) lacks a dependency of \
	pyproject.toml: run 'make lock'" >&2; exit 1; }
	$(BIN)/python -m ridehail.warmup
	$(MAKE) web-vendor
	touch $(STAMP)

web-vendor:
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	npm run --prefix web --silent build

demo: $(STAMP)
	$(BIN)/ridehail demo

serve: $(STAMP)
	$(BIN)/ridehail serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Phone-sized pictures of the rider and driver apps for the README (docs/app-*.png), taken
# during the browser test's ride; ordinary test runs leave docs/ alone.
screenshots: $(STAMP)
	RIDEHAIL_REFRESH_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/web/test_apps_ride.py -k whole_ride

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b" >&2; $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m ridehail.kernel.contract

# After changing dependencies in pyproject.toml (or to take newer releases: delete the lock
# files first). Existing pins are kept where they still fit; the runtime lock is the dev
# lock's subset, so the image runs the versions the tests ran.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet '$(UV)'
	$(BIN)/uv pip compile $(UV_FLAGS) pyproject.toml --extra dev -o $(DEV_LOCK)
	$(BIN)/uv pip compile $(UV_FLAGS) pyproject.toml -c $(DEV_LOCK) -o $(LOCK)

clean:
	rm -rf $(VENV) var/*.db var/broker web/node_modules $(VENDOR)
