# Every target works from a fresh clone: it creates .venv and installs the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Leaflet for the debug map comes from npm (web/package-lock.json), never from a CDN.
LEAFLET := web/node_modules/leaflet/dist
VENDOR  := dispatch/static/debugmap/vendor

.PHONY: demo test bench lint serve clean web-vendor

$(STAMP): pyproject.toml web/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m geoindex.warmup
	$(MAKE) web-vendor
	touch $(STAMP)

web-vendor:
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)
	cp $(LEAFLET)/leaflet.js $(LEAFLET)/leaflet.css $(VENDOR)/
	cp -R $(LEAFLET)/images $(VENDOR)/images

demo: $(STAMP)
	$(BIN)/ridehail demo

serve: $(STAMP)
	$(BIN)/ridehail serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b" >&2; $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m ridehail.kernel.contract

clean:
	rm -rf $(VENV) var/*.db var/broker web/node_modules $(VENDOR)
