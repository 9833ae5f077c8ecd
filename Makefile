# afluente: `make demo` runs the platform on embedded defaults; `make test` runs the whole suite
# against real services that it installs and starts itself.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DAGSTER_PORT ?= 3000
PYTEST_ARGS ?=

.PHONY: install demo demo-data demo-materialize ui test test-unit lint services-up services-down services-status bench clean \
	prod-config-check prod-grpc prod-up prod-down lock

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install -q uv
	$(UV) pip install -q --python $(PY) -e '.[dev]'
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

## demo: install, generate sample files for every domain, materialize everything, start the Dagster UI
demo: install $(DAGSTER_HOME)/dagster.yaml demo-data demo-materialize ui

demo-data: install
	$(PY) -m generators.exports --rows 20000 --files 2 --format csv --out data/landing/exports --seed 1
	$(PY) -m generators.exports --rows 20000 --files 1 --format xlsx --out data/landing/exports --seed 3
	$(PY) -m generators.exports --rows 5000 --files 1 --format csv --encoding latin-1 --bad-share 0.02 --out data/landing/exports --seed 7
	$(PY) -m generators.commerce --events 50000 --out data/landing/commerce --files 2 --bad-share 0.01 --no-progress
	$(PY) -m generators.usage --docs 20000 --out data/landing/usage --format jsonl --bad-share 0.01

demo-materialize: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m orchestration.demo

ui: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml -p $(DAGSTER_PORT) -h 0.0.0.0

## test: install, start the real services (PostgreSQL, Kafka, OpenSearch, FerretDB), run every test
test: install services-up
	AFLUENTE_SERVICES_SKIP_UP=1 $(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

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

## lock: pin the Docker image's dependencies (requirements.lock) to the versions installed and tested here
lock: install
	$(UV) pip freeze --python $(PY) --exclude-editable > $(VENV)/.freeze.txt
	$(UV) pip compile pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--constraint $(VENV)/.freeze.txt --no-annotate --custom-compile-command "make lock" -q -o requirements.lock

clean:
	rm -rf data .dagster_home .pytest_cache .ruff_cache
