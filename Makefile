# The README's commands. Each creates or refreshes .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

PACKAGES := domain projections consumers api cli

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/carejourney demo

# ruff, the formatter check, mypy (strict for domain/ and projections/: pyproject.toml)
# and the layer contracts (import-linter: pyproject.toml [tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check $(PACKAGES) tests bench
	$(BIN)/ruff format --check $(PACKAGES) tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole suite (what CI runs: .ci/run).
test: lint
	# The browser test drives Debian's Chromium (never a downloaded one); CI runs as root.
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pytest -q

# The quick loop while working: the unit, contract and fold tests; everything marked slow
# (PostgreSQL — marked by tests/conftest.py —, a broker, Chromium, processes) is left out.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/append.py

clean:
	rm -rf $(VENV) .carejourney
