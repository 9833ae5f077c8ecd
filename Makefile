# afluente: `make demo` runs the platform on embedded defaults; `make test` runs the whole suite
# against real services that it installs and starts itself.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# uv.lock decides every installed version (dev, CI, demo, image). The uv binary itself is one of the
# locked packages: it is bootstrapped at that version, then `uv sync --locked` installs exactly the lock.
UV_VERSION = $(shell sed -n '/^name = "uv"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | sha1sum | cut -c1-12)
export UV_PYTHON_DOWNLOADS := never
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DAGSTER_PORT ?= 3000
PYTEST_ARGS ?=

.PHONY: install demo demo-data demo-materialize ui test test-unit lint typecheck browser services-up services-down \
	services-status bench clean prod-config-check prod-grpc prod-up prod-down lock

$(STAMP): pyproject.toml uv.lock
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(UV) lock --check --offline -q 2>/dev/null || { \
		echo "uv.lock does not match pyproject.toml: run 'make lock' (it resolves new versions) and commit uv.lock"; \
		exit 1; }
	$(UV) sync --locked --extra dev --python $(PY) -q
	@# Bytecode for every installed module, written once here: with PYTHONDONTWRITEBYTECODE set (as on
	@# CI machines and in containers) every process would otherwise recompile pandas, dagster, ... from
	@# source, ~2-3 s more for each Dagster run process. Only missing or stale files are compiled.
	$(PY) -m compileall -q -j0 $(VENV)/lib/python3.11/site-packages >/dev/null \
		|| echo "note: some modules could not be byte-compiled; they compile at import"
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: orchestration/dagster.local.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp orchestration/dagster.local.yaml $@

## demo: install, generate sample files for every domain, then serve at once (Dagster UI, read API and
## dashboard answer while the daemon's sensors ingest the files and build every mart: watch the runs);
## the daemon keeps running afterwards. Ctrl-C stops everything.
demo: install $(DAGSTER_HOME)/dagster.yaml demo-data
	@$(MAKE) --no-print-directory ui DEMO=1

demo-data: install
	$(PY) -m generators.exports --rows 20000 --files 2 --format csv --out data/landing/exports --seed 1
	$(PY) -m generators.exports --rows 20000 --files 1 --format xlsx --out data/landing/exports --seed 3
	$(PY) -m generators.exports --rows 5000 --files 1 --format csv --encoding latin-1 --bad-share 0.02 --out data/landing/exports --seed 7
	$(PY) -m generators.commerce --events 50000 --out data/landing/commerce --files 2 --bad-share 0.01 --days 3 --no-progress
	$(PY) -m generators.usage --docs 20000 --out data/landing/usage --format jsonl --bad-share 0.01
	$(PY) -m generators.subscriptions --users 2000 --days 90 --out data/landing/subscriptions --files 2 --bad-share 0.01 --no-progress

# The demo has no search engine: the insight indices are not built nor watched (README, SEARCH_ENABLED).
demo-materialize ui: export SEARCH_ENABLED ?= false

## demo-materialize: headless: the daemon ingests the landed files and builds every mart, then stops
demo-materialize: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m orchestration.demo

## ui: the Dagster webserver and daemon (the two processes of a deployment) and the read API; Ctrl-C
## stops all three. With DEMO=1 the demo's daemon (orchestration.demo, short ticks) runs first, while the
## UI and the API already answer, then the daemon on the configured ticks takes over.
export API_PORT ?= 8000
DEMO ?=
ui: install $(DAGSTER_HOME)/dagster.yaml
	@printf '\n  Dagster UI  http://127.0.0.1:%s\n  API docs    http://127.0.0.1:%s/docs\n  Dashboard   http://127.0.0.1:%s/dashboard\n\n' \
		$(DAGSTER_PORT) $(API_PORT) $(API_PORT)
	@trap 'kill $$web $$api $$daemon 2>/dev/null; wait 2>/dev/null' EXIT; \
	$(VENV)/bin/dagster-webserver -w workspace.yaml -p $(DAGSTER_PORT) -h 0.0.0.0 & web=$$!; \
	API_HOST=0.0.0.0 $(PY) -m api & api=$$!; \
	$(if $(DEMO),$(PY) -m orchestration.demo || echo "demo: a run failed (see it in the Dagster UI)";) \
	$(VENV)/bin/dagster-daemon run -w workspace.yaml & daemon=$$!; \
	wait $$web

## test: install, lint and type-check, start the real services (PostgreSQL, Kafka, OpenSearch, FerretDB),
## run every test
test: install lint typecheck services-up browser
	AFLUENTE_SERVICES_SKIP_UP=1 $(PY) -m pytest -q $(PYTEST_ARGS)

## browser: Debian's Chromium for the browser tests (Playwright drives it; nothing is downloaded by Playwright)
browser:
	sh tests/browser/install_chromium.sh

test-unit: install
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

services-up: install
	$(PY) -m services up

services-down: install
	$(PY) -m services down

services-status: install
	$(PY) -m services status

bench: install services-up
	$(PY) -m bench.exports_load
	$(PY) -m bench.commerce_kafka --daemon
	$(PY) -m bench.usage_ingest

## Production (README "Production deployment"): orchestration/dagster.yaml, dagster.docker.yaml,
## orchestration/workspace.grpc.yaml, Dockerfile, docker-compose.yml, .env.example
prod-config-check: install
	$(PY) -m pytest -q -p no:cacheprovider tests/unit/test_deployment_files.py tests/unit/test_docker_compose.py

DAGSTER_GRPC_PORT ?= 4000
prod-grpc: install
	$(VENV)/bin/dagster api grpc -m orchestration.definitions -h 0.0.0.0 -p $(DAGSTER_GRPC_PORT)

prod-up:
	@test -f .env || { echo "no .env: cp .env.example .env and set the passwords"; exit 1; }
	docker compose up -d --build

prod-down:
	docker compose down

## lock: the only command that resolves versions. Run it after editing dependencies in pyproject.toml,
## or to take new releases (`make lock UPGRADE=1`); then `make install` and commit uv.lock.
UPGRADE ?=
lock:
	@test -x $(UV) || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install -q "uv==$(UV_VERSION)"; }
	$(UV) lock $(if $(UPGRADE),--upgrade)

clean:
	rm -rf data .dagster_home .pytest_cache .ruff_cache
