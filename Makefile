# Two entry points that work on a fresh machine: `make demo` and `make test` (both install first).
# The install takes every package at the exact version in requirements.lock (see docs/install.md).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
LOCK := requirements.lock
# The optional extras are installed too, so their tests run (docs/install.md); a user may install fewer.
EXTRAS ?= test,captum,timm,tensorboard,notebook

.PHONY: install demo test bench lock
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint $(LOCK) -e ".[$(EXTRAS)]"
	touch $@

demo: install
	$(BIN)/nv train --arch alexnet --reduce mean --epochs 24 --head-l1 0.1 --name demo --force
	$(BIN)/nv eval --run runs/demo --per-class
	$(BIN)/nv weights --run runs/demo --class red --plot
	$(BIN)/nv perturb --run runs/demo --channel all
	$(BIN)/nv explain --run runs/demo --index 0
	$(BIN)/nv dissect-map --run runs/demo
	$(BIN)/nv report --run runs/demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/bench_head.py

# Regenerate requirements.lock from pyproject.toml + requirements.in (needs the registry; see docs/install.md).
# uv keeps every version the lock already holds that still fits; UPGRADE="--upgrade-package typer" moves one package
# to its newest fitting release (UPGRADE=--upgrade: every package).
UPGRADE ?=
lock:
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet uv
	.lock-venv/bin/uv pip compile pyproject.toml requirements.in --all-extras --universal \
		--python-version 3.10 --no-header $(UPGRADE) --output-file $(LOCK)
