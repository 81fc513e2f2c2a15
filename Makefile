# fedchain: `make demo` and `make test` set everything up on a fresh machine (Python 3.11, Node 20).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch; any other torch requirement pulls GBs of CUDA packages.
TORCH  := torch==2.13.0

.PHONY: setup demo test test-python test-contracts lint bench contracts clean chromium

setup: $(VENV)/.installed node_modules/.installed chromium

# Headless Chromium (Debian package `chromium`) renders the HTML report in its test; installed once.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q chromium; }

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# `npm install` from the lock file, not `npm ci`: @foundry-rs/anvil lists binaries for other
# platforms as optional dependencies that npm cannot record in a lock file made on Linux.
node_modules/.installed: package.json package-lock.json
	npm install --no-save --no-audit --no-fund
	touch $@

# The main job: a simulated federation of 10 hospitals, every round recorded on the embedded chain.
demo: setup
	$(BIN)/fedchain simulate --out runs/demo

test: setup lint test-contracts test-python

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-python:
	$(BIN)/pytest

test-contracts:
	npx hardhat test

bench: setup
	$(BIN)/python scripts/bench.py

# Regenerate the committed ABI + bytecode after editing contracts/ (needs node_modules).
contracts: setup
	$(BIN)/python scripts/build_contracts

clean:
	rm -rf $(VENV) node_modules .hardhat .mypy_cache .ruff_cache .pytest_cache
