# Growth Engine: `make run` (engine + simulated marketplace), `make serve` (engine only), `make test`.
# run and serve install only what the engine needs; test adds the test tools (each has its own stamp file).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check
RUNTIME := $(VENV)/.installed-runtime
DEV     := $(VENV)/.installed-dev

.PHONY: setup setup-dev run serve test lint typecheck bench clean system-deps js-deps mutate

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade "pip>=24"

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	@touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(PIP) -e ".[dev]"
	@touch $@ $(RUNTIME)

setup: $(RUNTIME)

setup-dev: $(DEV)

system-deps:
	@bash scripts/system-deps.sh

# Browser SDKs for the e2e tests (analytics.js from npm), pinned by tests/e2e/js/package-lock.json.
JS_STAMP := tests/e2e/js/node_modules/.installed

$(JS_STAMP): tests/e2e/js/package.json tests/e2e/js/package-lock.json
	cd tests/e2e/js && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

js-deps: $(JS_STAMP)

run: setup
	$(BIN)/growth serve --simulate

serve: setup
	$(BIN)/growth serve

test: setup-dev system-deps js-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

lint: setup-dev
	$(BIN)/ruff check src tests benchmarks

typecheck: setup-dev
	$(BIN)/mypy

bench: setup
	$(BIN)/growth bench ingest

# Mutation testing of the rule modules ([tool.mutmut] in pyproject.toml); slow, so not part of `make test`.
# The modules: the send decision and guardrails (gate), segment conditions and windows, flow triggers and exits,
# consent, and ingestion's messageId dedupe (one function of ingest/service.py).
# One module only: make mutate MUTANTS='growthengine.gate.bucketing.*'; MUTATE_JOBS mutants at a time.
MUTANTS ?= growthengine.gate.* growthengine.segments.evaluate.* growthengine.segments.feeds.* \
	growthengine.flows.triggers.* growthengine.consent.* growthengine.ingest.service.*_drop_duplicates__mutmut_*
MUTATE_JOBS ?= 2
mutate: setup-dev
	rm -rf mutants
	$(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(foreach m,$(MUTANTS),'$(m)')
	$(BIN)/python -m tests.mutation_report

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache tests/e2e/js/node_modules
