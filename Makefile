# The one place for developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HALLPASS := $(BIN)/hallpass
PYTEST_ARGS ?=
HELM_VERSION ?= v3.22.0
GOBIN := $(shell go env GOPATH 2>/dev/null || echo $(HOME)/go)/bin
HELM := $(shell command -v helm 2>/dev/null || echo $(GOBIN)/helm)

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml constraints.txt
	@command -v java >/dev/null || { echo "Java 17+ is needed (apt-get install openjdk-17-jdk-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed to fetch Kafka (apt-get install maven)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

setup: $(BIN)/.installed tools ## create the virtualenv and install hallpass with its dev tools

# Prometheus and promtool (alert rule tests, the Prometheus integration test) come from
# Debian's packages; as root (CI) they are installed, otherwise the message says how.
# helm (the chart tests) comes from `go install`. Node.js and npm (the Node.js vendor example)
# come from Debian's packages; its npm packages and the Java example's Maven artifacts are
# fetched by the vendor test itself, once, into ~/.npm, ~/.m2 and ~/.cache/hallpass.
tools:
	@command -v javac >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing a JDK (javac: the Java producer of the topology tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends openjdk-17-jdk-headless >/dev/null; \
	  else echo "javac is needed for the tests: sudo apt-get install openjdk-17-jdk-headless"; exit 1; fi; }
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Prometheus and promtool (Debian package prometheus)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends prometheus >/dev/null; \
	  else echo "Prometheus and promtool are needed: sudo apt-get install prometheus"; exit 1; fi; }
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Node.js and npm (the Node.js vendor example, deploy/vendors/node)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends nodejs npm >/dev/null; \
	  else echo "Node.js 18+ and npm are needed for the tests: sudo apt-get install nodejs npm"; exit 1; fi; }
	@command -v helm >/dev/null || [ -x "$(GOBIN)/helm" ] || { \
	  command -v go >/dev/null || { echo "Go is needed to install helm (the Helm chart tests)"; exit 1; }; \
	  echo "installing helm $(HELM_VERSION) (go install; the Helm chart tests)"; \
	  go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); }

lint: setup ## check style, formatting and types of the code and the tests (changes nothing)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check streams connectors tests deploy
	$(BIN)/mypy

format: setup ## fix what ruff can fix
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format streams connectors tests deploy

format-check: setup ## check the formatting ruff format would give (changes nothing)
	$(BIN)/ruff format --check streams connectors tests deploy

test: setup lint ## set up and run every test (starts a real local Kafka + registry)
	$(BIN)/pytest $(PYTEST_ARGS)

# Slow: stacks of their own (the stack tests on ports 32300-32305 and 32381-32382, a single
# broker then a 3-broker cluster); `make test` leaves them out (pyproject: -m 'not faults').
test-faults: setup ## the fault tests: broker, registry and whole-stack kills, `up` recovering, the input fuzz
	$(BIN)/pytest -m faults tests/integration/test_stack_recovery.py \
	  tests/integration/test_cluster_faults.py tests/integration/test_registry_outage.py \
	  tests/integration/test_fuzz_inputs.py $(PYTEST_ARGS)

unit: setup ## only the fast tests of pure logic
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

up: setup ## start the local Kafka broker and schema registry
	@$(HALLPASS) status --json 2>/dev/null | grep -q '"running": true' || $(HALLPASS) up

down: setup ## stop them (data survives in .hallpass/)
	$(HALLPASS) down

demo: up ## set up everything, start the local bus and run the main job
	$(HALLPASS) demo

bench: up ## benchmarks on the local stack (not part of `make test`); writes bench-results.json
	$(BIN)/python -m tests.benchmarks.bench_processor $(BENCH_ARGS)
	$(BIN)/python -m tests.benchmarks.bench_lag
	$(BIN)/python -m tests.benchmarks.bench_ledger_index

helm: setup tools ## regenerate the chart's generated parts (topics, users, rules, dashboard), lint it
	$(BIN)/python deploy/helm/generate.py
	$(HELM) lint --strict --kube-version 1.33.0 deploy/helm/hallpass
	$(HELM) lint --strict --kube-version 1.33.0 deploy/helm/hallpass \
	  -f deploy/helm/examples/contracts.values.yaml -f deploy/helm/examples/partners.values.yaml

image: setup ## build the container image with buildah from a debootstrapped Debian root, smoke-test it (root)
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends buildah debootstrap >/dev/null; \
	  else echo "buildah and debootstrap are needed: sudo apt-get install buildah debootstrap"; exit 1; fi; }
	deploy/image/build.sh

clean: ## remove the virtualenv and caches (not the data dir)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: tools help setup lint format format-check test test-faults unit up down demo bench helm image clean
