# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck contracts unit clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck contracts unit

# The order workflow of examples/order, run in-process three ways: a happy path
# that heals through retries, a declined card that compensates, and a shipping
# outage that refunds. Each must end as the example says it should.
demo: $(STAMP)
	@for case in HappyPath PaymentDeclined ShippingDown; do \
		echo "== order workflow, test case $$case"; \
		$(BIN)/dirigent run examples/order/order.asl.json --virtual-time \
			--input-file examples/order/order-input.json \
			--mock-config examples/order/mocks.json --test-case $$case; \
		code=$$?; want=1; [ $$case = HappyPath ] && want=0; \
		if [ $$code -ne $$want ]; then echo "unexpected exit $$code for $$case"; exit 1; fi; \
	done

bench: $(STAMP)
	$(BIN)/python bench/asl/run.py

# The durable engine against DBOS Transact and Restate (bench/engine/run.py);
# installs the peers into bench/engine on first use; needs PostgreSQL, Node, npm.
.PHONY: bench-engine
bench-engine: $(STAMP)
	$(BIN)/python bench/engine/run.py

clean:
	rm -rf $(VENV) .dirigent .mypy_cache .pytest_cache .ruff_cache
