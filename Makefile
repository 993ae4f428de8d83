# Switchyard: `make run` serves the embedded default, `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config/switchyard.toml

.PHONY: setup build run test test-rust test-e2e lint fmt clean

# Toolchain-independent setup: a virtualenv with the official OpenAI SDK for the end-to-end tests.
setup: $(VENV)/.ready

$(VENV)/.ready: e2e/requirements.txt
	@# A fresh Debian has python3 but not always its venv module.
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r e2e/requirements.txt
	touch $@

build:
	$(CARGO) build --release --workspace --bins

run: setup build
	scripts/run-local.sh $(CONFIG)

# Unit and integration tests share the release build's dependency artifacts, then the release
# binary is exercised end to end with the official `openai` Python SDK.
test: setup build test-rust test-e2e

test-rust:
	$(CARGO) test --release --workspace

test-e2e: setup build
	$(PY) -m pytest -q e2e

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(VENV) data
