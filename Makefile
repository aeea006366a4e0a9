# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench venv clean pkg-payload pkg mac-smoke lock

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || \
		{ echo "error: no $(PYTHON) on PATH; install Python 3.11 or newer, or set PYTHON=/path/to/python3" >&2; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); bootstrapper needs 3.11 or newer: set PYTHON=/path/to/python3.11" >&2; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint pkg-payload
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Deployment (docs/deployment.md): the payload check runs anywhere; the package and smoke test need a Mac.
pkg-payload: $(STAMP)
	$(BIN)/python pkg/build.py payload

pkg: $(STAMP)
	$(BIN)/python pkg/build.py pkg

# Regenerate pkg/requirements.lock (hashed wheels for the bundled runtime) after changing dependencies.
lock: $(STAMP)
	$(BIN)/python pkg/build.py lock

mac-smoke: $(STAMP)
	$(BIN)/python pkg/build.py mac-smoke

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
