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
	$(BIN)/ruff check syncd connectors syncd_testkit tests bench deploy

types: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy deploy/rehearse_image.py

# The layer contracts in pyproject.toml [tool.importlinter] (ARCHITECTURE.md).
imports: $(STAMP)
	$(BIN)/lint-imports

# The suite on several workers (pytest-xdist): most tests wait on sockets, servers and
# child processes rather than the CPU, so three workers overlap those waits on CI's 2-core
# machine; `make unit PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= 3

unit: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist worksteal

bench: $(STAMP)
	$(BIN)/python -m bench.sync --help

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
