# fedchain: `make demo` and `make test` set everything up on a fresh machine (Python 3.11, Node 20).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch; any other torch requirement pulls GBs of CUDA packages.
TORCH  := torch==2.13.0

.PHONY: setup demo test test-python test-federations test-consortium contracts-checked test-contracts lint docs slither bench contracts clean chromium

# `make demo` and `make test` install the three at once (`-j 3 setup`): each mostly waits on
# downloads.
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
# byzfl: a test-only reference for the robust rules (tests/unit/test_robust_rules.py), without its
# dependencies: its package imports torchvision (GBs of CUDA wheels), the tests load only its
# aggregator modules (numpy, torch and scipy, all installed above).
	$(BIN)/pip install --quiet --no-deps byzfl==0.0.11
	touch $@

# Slither in its own venv: every slither-analyzer release requires web3 < 8 (pins and why they
# are not in pyproject.toml: requirements/slither.txt).
SLITHER_VENV := .venv-slither
$(SLITHER_VENV)/.installed: requirements/slither.txt
	$(PYTHON) -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/pip install --quiet --upgrade pip
	$(SLITHER_VENV)/bin/pip install --quiet -r requirements/slither.txt
	touch $@

# `npm install` from the lock file, not `npm ci`: @foundry-rs/anvil lists binaries for other
# platforms as optional dependencies that npm cannot record in a lock file made on Linux.
node_modules/.installed: package.json package-lock.json
	npm install --no-save --no-audit --no-fund
	touch $@

# The main job: a simulated federation of 10 hospitals, every round recorded on the embedded chain.
# A finished demo run is kept (its claims too): `make demo` again only says where it is; a demo
# stopped by Ctrl-C goes on where it stopped.
DEMO_OUT ?= runs/demo
demo:
	@$(MAKE) --no-print-directory -j 3 setup
	@if [ -f $(DEMO_OUT)/summary.json ]; then \
	  echo "The demo's run is in $(DEMO_OUT) (report: $(DEMO_OUT)/report.html); kept as it is."; \
	  echo "Run the demo again elsewhere with: make demo DEMO_OUT=runs/demo-2"; \
	elif [ -f $(DEMO_OUT)/run.json ]; then \
	  $(BIN)/fedchain simulate --resume $(DEMO_OUT); \
	else \
	  $(BIN)/fedchain simulate --out $(DEMO_OUT); \
	fi

# Everything at once after the set-up: the federations (two workers) and the consortium test
# wait on their processes, chains and sockets as much as they compute, which leaves room on two
# cores for the static checks and the contracts' checks (one core each). Each target's output is
# printed whole when it ends (--output-sync); the first failure fails `make test`.
test:
	$(MAKE) --no-print-directory -j 3 setup
	$(MAKE) --no-print-directory --output-sync=target -j 4 \
	  lint test-federations test-consortium contracts-checked

# One after the other: slither and the Hardhat tests compile into the same .hardhat/ folder; then
# the recompile of the committed artifacts with solc-js (CPU-bound, like them).
contracts-checked: docs
	$(MAKE) --no-print-directory slither
	$(MAKE) --no-print-directory test-contracts
	$(BIN)/pytest -m solc tests/chain/test_artifacts.py

# lint-imports: the layer order and the web3 rule of [tool.importlinter] in pyproject.toml.
# (Import cycles, counting imports inside functions: tests/unit/test_import_cycles.py.)
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache

# The documentation site (mkdocs.yml, strict: a broken link or a page left out of nav fails).
docs: setup
	$(BIN)/mkdocs build --strict --quiet -d .site

# Static analysis of contracts/ (settings: slither.config.json). It reads Hardhat's solc-js build;
# an incremental compile leaves older build-info files holding the previous text of an edited
# contract, so it recompiles from scratch when there is more than one. Fails on any finding of
# medium or high impact; a false positive is suppressed in the source, with the reason.
slither: setup $(SLITHER_VENV)/.installed
	npx hardhat compile --quiet
	if [ "$$(ls .hardhat/artifacts/build-info | wc -l)" -gt 1 ]; then npx hardhat compile --force --quiet; fi
	$(SLITHER_VENV)/bin/slither . --fail-medium

# Two workers (pytest-xdist), each test module whole on one of them so that a module's federation
# runs once; the federations wait on processes, chains and sockets as much as they compute. The
# consortium test runs in its own session: in the same session as the others, its SuperLink twice
# did not start within 180 s (on a machine loaded by other work; cause not found).
CONSORTIUM_TESTS = tests/e2e/test_deployment.py
test-python: test-federations test-consortium

test-federations: setup
	$(BIN)/pytest -n 2 --dist loadfile -m "not solc" $(addprefix --ignore=,$(CONSORTIUM_TESTS))

test-consortium: setup
	$(BIN)/pytest $(CONSORTIUM_TESTS)

test-contracts:
	npx hardhat test

bench: setup
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_privacy.py --scores --write
	$(BIN)/python scripts/bench_scoring.py --at-scale --write
	$(BIN)/python scripts/bench_s3_store.py --write
	$(BIN)/python scripts/bench_model_size.py --write

# Regenerate the committed ABI + bytecode after editing contracts/ (needs node_modules).
contracts: setup
	$(BIN)/python scripts/build_contracts

clean:
	rm -rf $(VENV) $(SLITHER_VENV) node_modules .hardhat .mypy_cache .ruff_cache .pytest_cache
