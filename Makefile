# Two commands from a fresh clone:
#   make run    the whole pipeline (dvc repro) on the embedded demo corpus
#   make test   the lint (ruff, mypy), then the test suite
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

# Nothing here reaches the internet: switch every library's telemetry off (the one list, KEY=value lines).
TELEMETRY_ENV := src/vocalsep/telemetry.env
include $(TELEMETRY_ENV)
export $(shell sed -n 's/^\([A-Z_]*\)=.*/\1/p' $(TELEMETRY_ENV))
export PATH := $(BIN):$(PATH)

.PHONY: run test install lint clean-data

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml scripts/vocalsep-venv-path.pth scripts/telemetry_pth.py $(TELEMETRY_ENV)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# torch from pip (it finds the CPU build on this machine's disk); the rest through uv, pinned.
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -qq "torch==2.13.0"
	@$(BIN)/python -c "import uv" 2>/dev/null || $(BIN)/pip install -qq "uv==0.13.8"
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@# Tools called by path (.venv/bin/dvc repro, .venv/bin/mlflow models serve) run `python`, `vocalsep`...
	@# in subprocesses: this .pth puts the venv's bin first on PATH in every process of the venv.
	@$(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" | \
	  xargs -I{} cp scripts/vocalsep-venv-path.pth {}/
	@# Telemetry off in every process of the venv, activated or called by path (a new shell's `prefect
	@# server start` too), unless the user set a switch: a .pth written from the one list.
	@$(BIN)/python scripts/telemetry_pth.py $(TELEMETRY_ENV)
	@# Byte-compile once: with PYTHONDONTWRITEBYTECODE set, every process would recompile MLflow (~10 s).
	@$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1 || true
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/dvc repro
	@$(BIN)/vocalsep summary

lint: $(STAMP)
	$(BIN)/ruff check src flows tests benchmarks scripts
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q --timeout=1200 --durations=25 $(PYTEST_ARGS)

clean-data:
	rm -rf data models metrics plots reports
