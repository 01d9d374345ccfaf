# The two commands of this project are `make run` and `make test`; each sets
# up what it needs (.venv with requirements.txt) on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: run test bench lint unit system-deps clean

$(INSTALLED): requirements.txt requirements-node.txt deploy/install-node.sh
	bash deploy/install-node.sh $(VENV) requirements.txt
	touch $(INSTALLED)

## make run: a local three-node cluster (ports 3000/3001, 4000/4001, 5000/5001); Ctrl-C stops it.
run: $(INSTALLED)
	$(PY) manage.py runcluster

## make test: lint, type checks, and the whole test suite (unit, API, real clusters, browser).
test: $(INSTALLED) system-deps lint
	$(PY) -m pytest

## make bench: the performance suite against Redis, a bare Django view and itself
## (installs redis-server, wrk and Go through apt; about 20 minutes); writes
## docs/BENCHMARKS.md and docs/scaling.png.
bench: $(INSTALLED) system-deps
	$(PY) -m bench.perf

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## Chromium renders the browsable API and Swagger UI in the page tests, Prometheus
## scrapes a node in the metrics test; Redis and
## wrk serve the benchmarks' smoke run.
system-deps:
	@bash deploy/install-system-deps.sh
	@bash bench/install-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis data
