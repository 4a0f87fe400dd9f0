# The two commands a newcomer needs:  make demo  and  make test.
# Both create .venv themselves; nothing else has to be installed first but Python 3.11+.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make demo: set everything up and start Actana with a demo workspace and agent
demo: $(STAMP)
	@scripts/ensure-bubblewrap.sh
	@# The container flavor's image, when a Docker daemon answers (a no-op when it is current);
	@# without one, or if the build fails, the demo falls back to native and says so.
	@$(BIN)/actana sandbox build-image --if-docker >/dev/null || true
	$(BIN)/actana demo

## make test: set everything up, lint, type-check and run the whole suite
test: $(STAMP) lint typecheck
	@scripts/run-tests.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
