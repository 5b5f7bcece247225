# The two commands a newcomer needs (see README.md): `make run` and `make test`.
# Both create the virtual environment and install everything on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint types imports browser unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/syncd run

test: lint types imports browser unit

# Debian's Chromium for tests/booking/test_browser.py (installed when missing, as root).
browser:
	@.ci/setup-browser

lint: $(STAMP)
	$(BIN)/ruff check syncd connectors syncd_testkit tests bench

types: $(STAMP)
	$(BIN)/mypy

# The layer contracts in pyproject.toml [tool.importlinter] (ARCHITECTURE.md).
imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.sync --help

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
