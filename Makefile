# htcgrid: a newcomer's entry points. `make help` lists them.
# Every target creates what it needs on a fresh machine: the dev environment in .venv, the SAM
# and checkov tool environments in .tools/ (they pin their own boto3, so they live apart), the docs
# site's in .tools/docs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt */pyproject.toml layers/core/pyproject.toml compute/eks/agent/pyproject.toml | cksum | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help dev runtimes prometheus demo chaos bench bench-peers compare test lint lint-python lint-template docs schemas local-up local-down clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

dev: $(STAMP) ## create the development environment (.venv) with every package editable

demo: dev ## run the local grid on 10,000 Monte Carlo option-pricing tasks
	$(BIN)/python -m htcgrid_examples.demo

chaos: dev ## kill agents and throttle AWS while 5,000 tasks run, then check every task (~5 min)
	$(BIN)/python -m htcgrid_examples.chaos

bench: dev runtimes ## measure throughput, latency, agent CPU, AWS requests, $ per million tasks, and each runtime's overhead (~10 min)
	$(BIN)/pip install -q -r requirements-bench.txt
	$(BIN)/python -m htcgrid_bench --scaling 1,2,4 --plots docs/img
	$(BIN)/python -m htcgrid_bench.runtimes

bench-peers: dev ## htcgrid beside Celery on SQS (same emulator, same 3 workloads): the ratios against issue 15's targets (~15 min)
	$(BIN)/pip install -q -r requirements-peers.txt
	$(BIN)/python -m htcgrid_bench.peers

compare: dev ## the bench on BASE=<commit> and the working tree (or HEAD=<commit>), side by side
	@test -n "$(BASE)" || { echo "usage: make compare BASE=<commit> [HEAD=<commit>]"; exit 2; }
	$(BIN)/python -m htcgrid_bench.compare --base $(BASE) $(if $(HEAD),--head $(HEAD)) \
		-- --burst-tasks 2000 --sleep-tasks 500 --sequential 100

runtimes: ## build the example Lambda runtimes (C++, Java, Node, Python, shell) into .tools/runtimes
	bash scripts/build-runtimes.sh

prometheus: ## install Prometheus (Debian's package) for htcgrid-local up --monitoring, if missing
	bash scripts/install-prometheus.sh

test: dev runtimes prometheus ## run every test (unit, integration on moto, end to end on the local grid)
	$(BIN)/pytest

lint: lint-python lint-template lint-k8s ## ruff, mypy, cfn-lint, sam validate/build, checkov, k8s

lint-python: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/core/htcgrid_core client/htcgrid compute/eks/agent/htcgrid_agent local/htcgrid_local examples/htcgrid_examples examples/quantlib_book/quantlib_book examples/sweep/htcgrid_sweep bench/htcgrid_bench
	for handler in functions/*/app.py; do $(BIN)/mypy $$handler || exit 1; done

lint-template: ## cfn-lint, sam validate --lint, sam build, checkov (tool envs in .tools/)
	bash scripts/lint-template.sh

lint-k8s: ## render the EKS overlays; schemas, checkov, cfn-lint of compute/eks (tools in .tools/)
	bash scripts/lint-k8s.sh

# The docs site's tools live apart from .venv (requirements-docs.txt says why); the venv is made
# again whenever the pins change. MkDocs' own banner about its 2.0 is silenced: it is advice, and
# a build log should hold only what the build found.
DOCS_VENV := .tools/docs
DOCS_STAMP := $(DOCS_VENV)/.installed-$(shell cksum < requirements-docs.txt | cut -d' ' -f1)

$(DOCS_STAMP): requirements-docs.txt
	rm -rf $(DOCS_VENV)
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-docs.txt
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP) ## build the docs site into site/ (mkdocs --strict: a broken link or API reference fails)
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict --quiet

schemas: dev ## regenerate docs/schema/ from the core's documents
	$(BIN)/python -m htcgrid_core.schema docs/schema

local-up: dev ## start the local grid in the background (2 agents running the pricing handler)
	$(BIN)/htcgrid-local up --detach --agents 2 --handler htcgrid_examples.pricing:handler

local-down: dev ## stop the local grid
	$(BIN)/htcgrid-local down

clean: ## remove environments and build output
	rm -rf $(VENV) .tools .aws-sam .htcgrid .mypy_cache .ruff_cache .pytest_cache site
