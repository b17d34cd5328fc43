# Two entry points that work on a fresh machine: `make demo` and `make test` (both install first).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install demo test bench
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(BIN)/nv train --arch alexnet --reduce mean --epochs 12 --name demo --force
	$(BIN)/nv eval --run runs/demo --per-class
	$(BIN)/nv weights --run runs/demo --class red --plot
	$(BIN)/nv perturb --run runs/demo --channel all
	$(BIN)/nv explain --run runs/demo --index 0
	$(BIN)/nv dissect-map --run runs/demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_head.py
