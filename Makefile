# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck contracts unit clean bench host-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The mesh's optional C extensions are compiled by this install: rebuilt when they change.
$(STAMP): pyproject.toml $(wildcard src/dirigent/mesh/*.c) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# The mesh's cross-host tests drop packets with nftables (tests/integration/mesh/netns.py).
# Installed once when root, as CI is; elsewhere those tests fail and say nft is missing.
host-tools:
	@command -v nft >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null; }

unit: $(STAMP) host-tools
	$(BIN)/pytest -q

test: lint typecheck contracts unit

# The shop of examples/shop end to end: its services, the engine and the API come
# up, orders stream through while a shipping replica is killed and payments is
# slowed, and every business invariant is checked from the services' own records.
# Exits non-zero if one does not hold; stops everything it started.
demo: $(STAMP)
	$(BIN)/dirigent demo --once

bench: $(STAMP)
	$(BIN)/python bench/asl/run.py

# The durable engine against DBOS Transact and Restate (bench/engine/run.py);
# installs the peers into bench/engine on first use; needs PostgreSQL, Node, npm.
.PHONY: bench-engine
bench-engine: $(STAMP)
	$(BIN)/python bench/engine/run.py

clean:
	rm -rf $(VENV) .dirigent .mypy_cache .pytest_cache .ruff_cache
