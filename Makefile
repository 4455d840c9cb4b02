# Plain tasks; each is also a one-line command you can type without make.
PYTHON ?= .venv/bin/python
export DAGSTER_HOME := $(CURDIR)
# make dev DEV_PORT=3001 when 3000 is taken
DEV_PORT ?= 3000

.PHONY: install demo test dev doctor sample docs schemas-check lint format bench clean

.venv/bin/python:
	python3 -m venv .venv

install: .venv/bin/python
	$(PYTHON) -m pip install -q -e '.[test]'

demo: .venv/bin/python  ## a week of sample events through every asset, into data/lake
	$(PYTHON) -m pip install -q -e . && $(PYTHON) -m pipelines.demo

test: install
	$(PYTHON) -m pytest -n auto --dist loadfile

dev:  ## the Dagster UI on the same lake, http://127.0.0.1:3000; Ctrl-C or SIGTERM stops it all
	$(PYTHON) -m pipelines.dev -h 127.0.0.1 -p $(DEV_PORT)

doctor:  ## check the configuration: one line per problem, exit 1 on any
	$(PYTHON) -m pipelines.doctor

sample:
	$(PYTHON) -m pipelines.sample --root data/lake --start 2025-06-02 --days 7

docs:
	$(PYTHON) -m pipelines.docs

schemas-check:  ## classify each schema change; fail a breaking one without a major bump
	$(PYTHON) -m pipelines.schemas check

lint:
	$(PYTHON) -m ruff check pipelines tests bench && $(PYTHON) -m ruff format --check pipelines tests bench
	$(PYTHON) -m sqlfluff lint sql

format:
	$(PYTHON) -m ruff format pipelines tests bench && $(PYTHON) -m ruff check --fix pipelines tests bench
	$(PYTHON) -m sqlfluff fix -f sql

bench:  ## ingest vs a raw DuckDB JSON->Parquet copy, and a naive loop (see bench/README.md)
	$(PYTHON) -m pip install -q -e '.[bench]' && $(PYTHON) -m bench.run

clean:
	rm -rf data .dagster history schedules storage
