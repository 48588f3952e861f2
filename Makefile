# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: venv demo simulate bench test lint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# checkov pins packages the project's own tools outgrew, so it lives in a venv of its own.
$(VENV)/checkov/bin/checkov:
	python3 -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install -q 'checkov==3.3.30'

# The main job on the embedded default: the real daemon against the simulated Tracardi cluster.
demo: venv
	$(BIN)/tracardi-autoscaler demo

simulate: venv
	$(BIN)/tracardi-autoscaler simulate --scenario worker-outage --plot out/simulate.png

bench: venv
	$(BIN)/tracardi-autoscaler bench --json out/bench.json --plots out/plots

lint: venv
	$(BIN)/ruff check autoscaler tests
	$(BIN)/mypy autoscaler
	$(BIN)/lint-imports

test: lint $(VENV)/checkov/bin/checkov
	CI=$${CI:-} $(BIN)/python -m pytest -q -p no:cacheprovider
