# The common loops. `make up` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(PYTHON) -m uv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install up test lint typecheck unit bench system-packages clean

install: .venv/.installed node_modules/.installed

# The virtual environment comes from the lock file only (uv.lock), never from a resolve.
.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --compile-bytecode  # children start without compiling imports first
	@touch $@

# The storefront's front-end packages (htmx, socket.io client), exactly as package-lock.json
# pins them; served from node_modules under /static/vendor/, never committed.
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || $(MAKE) system-packages
	npm ci --no-audit --no-fund
	@touch $@

# Debian packages the tests and benchmarks drive: the load generator, Node.js/npm for the
# storefront's packages, Chromium for the browser tests (Playwright cannot download one here).
# One `apt-get update`, and only when something is missing.
SYSTEM_COMMANDS := wrk npm chromium
system-packages:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  packages=$$(echo "$$missing" | sed 's/\bnpm\b/nodejs npm/'); \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$packages; \
	fi

up: install
	.venv/bin/stockgate up --demo

lint: install
	.venv/bin/ruff check src tests migrations
	.venv/bin/ruff format --check src tests migrations
	.venv/bin/lint-imports --no-logo  # the dependency rule: contracts in pyproject.toml

typecheck: install
	.venv/bin/mypy

# Test files run in three processes (two cores: one waits on I/O while others compute); a
# file stays in one process, so its fixtures and fixed ports are never shared.
test: install system-packages lint typecheck
	.venv/bin/pytest -n 3 --dist loadfile

unit: install
	.venv/bin/pytest tests/unit -q

bench: install system-packages
	.venv/bin/stockgate bench reserve

clean:
	rm -rf .venv node_modules .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
