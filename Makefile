# Relais: `make run` sets everything up and starts the app; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test bench install install-dev secrets migrate messages lint typecheck pytest pytest-postgres browser-deps postgres-deps deploy-deps clean

$(VENV)/.base-installed: requirements/base.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.base-installed requirements/dev.txt
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	touch $@

install: $(VENV)/.base-installed
install-dev: $(VENV)/.dev-installed

secrets: install
	umask 077 && mkdir -p var && chmod 700 var && $(PY) -m relais.core.devsecrets var/secrets

messages: install
	$(PY) -m relais.core.compile_messages

migrate: secrets messages
	umask 077 && $(PY) manage.py migrate --no-input -v 0

run: migrate
	umask 077 && $(PY) manage.py collectstatic --no-input -v 0
	umask 077 && $(PY) manage.py seed_demo
	PORT=$(PORT) exec scripts/run-dev

browser-deps:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

postgres-deps:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)

# Debian's nginx for the reference stack test (tests/deploy/test_stack.py, which also needs postgres-deps).
deploy-deps: postgres-deps
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null)

lint: install-dev
	$(VENV)/bin/ruff check relais sandbox bench tests
	$(VENV)/bin/ruff format --check relais sandbox bench tests

typecheck: install-dev
	RELAIS_ENV=test $(VENV)/bin/mypy relais sandbox bench

# The whole suite on the embedded SQLite default, browser journey and the deploy/ stack test (own PostgreSQL) included.
pytest: install-dev messages browser-deps deploy-deps
	RELAIS_ENV=test $(VENV)/bin/pytest -n 2 $(PYTEST_ARGS)

# The same suite on a real PostgreSQL server (throwaway cluster on loopback); subprocess-only tests are skipped.
pytest-postgres: install-dev messages postgres-deps
	url=$$(scripts/pg-test-server start) && trap 'scripts/pg-test-server stop' EXIT && \
	  DATABASE_URL=$$url RELAIS_ENV=test $(VENV)/bin/pytest -n 2 --ignore=tests/e2e \
	  --deselect tests/core/test_encryption_proof.py --deselect tests/core/test_production_settings.py $(PYTEST_ARGS)

test: lint typecheck pytest pytest-postgres

# Throughput figures of issue 13 against a fresh database (docs/performance.md); not part of `make test`, about 15 min.
# A smoke run on small sizes: make bench BENCH_ARGS="--quick".
bench: install-dev messages
	nice $(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
