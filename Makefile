# Everything runs inside a local virtual environment (.venv/) that `make setup` creates.
# Only Python 3.11 is needed on the machine; CPU torch 2.13.0 is installed first, explicitly,
# so that no dependency can pull a CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: setup test test-faults lint demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev]"
	touch $@

lint: setup
	$(PY) -m ruff check .

test: setup lint
	$(PY) -m pytest -q

# The fault matrix and bad-input tests alone (docs/reliability.md); `make test` runs them too.
test-faults: setup
	$(PY) -m pytest -q tests/faults

demo: setup
	$(PY) -m jobs.demo

bench: setup
	$(PY) -m bench.semi_supervised

clean:
	rm -rf runs data/synthetic .pytest_cache
