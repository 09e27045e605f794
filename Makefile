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

demo: $(STAMP)
	$(BIN)/dirigent run examples/order/order.asl.json \
		--input-file examples/order/order-input.json \
		--mock-config examples/order/mocks.json --test-case HappyPath
	$(BIN)/dirigent run examples/order/order.asl.json \
		--input-file examples/order/order-input.json \
		--mock-config examples/order/mocks.json --test-case PaymentDeclined; \
		test $$? -eq 1

bench: $(STAMP)
	$(BIN)/python bench/asl/run.py

clean:
	rm -rf $(VENV) .dirigent .mypy_cache .pytest_cache .ruff_cache
