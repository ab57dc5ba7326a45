# Two commands on a fresh machine: `make run` and `make test`. Both set up the virtual environment first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Machines without an NVIDIA driver (CI, laptops) take torch==2.13.0 (the CPU build where the package index
# serves one; see README); machines with one take the default (CUDA) build. Override with e.g.
# `make run TORCH_SPEC='torch==2.5.1'`.
TORCH_SPEC ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch,torch==2.13.0)

.PHONY: setup run test test-fast lint bench clean messages

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# With DISCORD_TOKEN (environment or .env) this runs the real bot; without one, the local playground.
run: setup
	exec $(BIN)/morph-bot --auto

test: setup lint
	@bash scripts/ensure-chromium || true
	@bash scripts/ensure-postgres || true
	$(BIN)/python -m pytest

# Everyday lane: the same set up, without the tests marked slow (`make test` runs them all; CI does).
test-fast: setup
	@bash scripts/ensure-chromium || true
	@bash scripts/ensure-postgres || true
	$(BIN)/python -m pytest -m "not slow"

# ruff (style, bugs, blocking calls in async code) and mypy (types): configured in pyproject.toml
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# The message catalogues (bot/locales, see README "Languages"): extract every text of the bot into the template
# bot/locales/bot.pot, then merge it into each language's bot.po (new texts arrive empty: translate them).
# A new language: `$(BIN)/pybabel init -D bot -i bot/locales/bot.pot -d bot/locales -l <code>`.
MESSAGE_SOURCES := bot/*.py bot/cogs bot/store bot/playground morph/request.py
messages: setup
	$(BIN)/pybabel -q extract --no-wrap -k locale_str -k N_ --no-location --sort-by-file --project=morph-bot \
		-o bot/locales/bot.pot $(MESSAGE_SOURCES)
	$(BIN)/pybabel -q update --no-wrap -D bot -i bot/locales/bot.pot -d bot/locales --no-fuzzy-matching --ignore-obsolete

bench: setup
	$(BIN)/python -m bench
	$(BIN)/python -m bench.video

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
