# GhostCRM control plane. `make demo` runs it, `make test` tests it; each sets itself up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432
TEST_ENV := MAIN_DATABASE_URL=$(PG_URL)/ghostcrm_main TENANT_DATABASE_URL=$(PG_URL)/ghostcrm_tenants \
	REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} GHOSTCRM_ENV=development

.PHONY: demo test test-postgres test-sqlite lint format services system-deps bench clean worker

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# pyodbc (for the SQL Server backend and the T-SQL export) needs the unixODBC driver manager.
system-deps:
	@ldconfig -p | grep -q 'libodbc.so.2' || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get install -y -q unixodbc >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null && apt-get install -y -q unixodbc >/dev/null)); \
	  else echo "Install unixODBC first: sudo apt-get install unixodbc"; exit 1; fi; }

services:
	@scripts/services.sh

# The RQ worker (queues provisioning, default, billing, with RQ's scheduler for retries) and the cron
# scheduler for settings.PERIODIC_JOBS (the provisioning reconciler, the retention purge, ...).
worker: $(VENV)/.installed
	$(PY) manage.py run_worker

demo: $(VENV)/.installed
	$(PY) scripts/demo.py

test: $(VENV)/.installed system-deps services
	@$(MAKE) --no-print-directory test-postgres test-sqlite

# The whole suite, main database on PostgreSQL.
test-postgres:
	$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

# The main-database tests again, main database on SQLite (the tenant database is PostgreSQL only).
test-sqlite:
	$(TEST_ENV) MAIN_DATABASE_URL=sqlite:///$(CURDIR)/var/test-main.sqlite3 $(PY) -m pytest -m "not tenant_db and not server_db" $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed system-deps services
	$(TEST_ENV) $(PY) bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
