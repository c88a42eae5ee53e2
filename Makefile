# The README's two commands: `make demo` (install + CPU demo) and `make test` (install + ruff + pytest).
SHELL := /bin/bash
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test setup setup-test lint

setup:
	@scripts/setup.sh main

setup-test:
	@scripts/setup.sh test

demo: setup
	@echo "[demo] running sdpg demo (CPU, see docs/results.md)"
	@.venv/bin/sdpg demo

lint: setup-test
	@echo "[test] ruff check"
	@.venv/bin/ruff check .

test: lint
	@echo "[test] pytest"
	@.venv/bin/python -m pytest
