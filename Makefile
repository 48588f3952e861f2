# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
# The interpreter the venv is made from: the distribution's Python when it is 3.11 or newer and
# can make a venv, else the first python3 on PATH; `make PYTHON=... venv` picks another. Debian's
# (an optimized build, linked statically) ran the full bench 17 % faster than pyenv's plain
# 3.11.7 on the same machine, with the same numbers (see the README's Benchmark section).
SYSTEM_PYTHON := /usr/bin/python3
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' \
	>/dev/null 2>&1 && echo $(SYSTEM_PYTHON) || echo python3)
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: venv demo simulate bench soak reliability test lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# checkov pins packages the project's own tools outgrew, so it lives in a venv of its own.
$(VENV)/checkov/bin/checkov:
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install -q 'checkov==3.3.30'

# The main job on the embedded default: the real daemon against the simulated Tracardi cluster.
demo: venv
	$(BIN)/tracardi-autoscaler demo

simulate: venv
	$(BIN)/tracardi-autoscaler simulate --scenario worker-outage --plot out/simulate.png

bench: venv
	$(BIN)/tracardi-autoscaler bench --json out/bench.json --plots out/plots

# The chaos soak of RELIABILITY.md: a simulated day of random faults, both workloads.
soak: venv
	$(BIN)/tracardi-autoscaler bench --scenario chaos --seed 1 --hours 24 --no-progress \
		--json out/chaos-seed1.json

# RELIABILITY.md, from the fault matrix, the fuzzing and the soak as they run now.
reliability: venv soak
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/faults tests/fuzz
	$(BIN)/python scripts/reliability.py

lint: venv
	$(BIN)/ruff check autoscaler tests scripts
	$(BIN)/mypy autoscaler scripts
	$(BIN)/lint-imports

# Every test, then the soak, then RELIABILITY.md checked against what they measured.
test: lint $(VENV)/checkov/bin/checkov
	CI=$${CI:-} $(BIN)/python -m pytest -q -p no:cacheprovider
	$(MAKE) soak
	$(BIN)/python scripts/reliability.py --check RELIABILITY.md
