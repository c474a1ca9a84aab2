# revenue-webhooks: every command creates .venv and installs what it needs on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# Lambda runs python3.13 and `sam build` needs that interpreter: prefer it for the venv.
# (A pyenv shim may exist without working, so each candidate is tried.)
PYTHON313 := $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
	"$$p" -c 'import sys' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
BOOTSTRAP_PYTHON ?= $(or $(PYTHON313),python3)
PYTEST_ARGS ?=
# template.yaml's Architecture parameter, for the build (the layer's wheels) and the parameter override alike.
ARCHITECTURE ?= arm64
export SAM_CLI_TELEMETRY := 0
export AWS_EC2_METADATA_DISABLED := true

.PHONY: help venv demo dev test lint unit integration e2e template build docs bench bench-smoke event redrive replay backfill reconcile clean fuzz fuzz-atheris reliability security sam-local-test

help: ## list the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
		'{name[NR] = $$1; text[NR] = $$2; if (length($$1) > width) width = length($$1)} \
		END {for (i = 1; i <= NR; i++) printf "  make %-*s  %s\n", width, name[i], text[i]}'

# On stderr, so that `make event ... > event.json` on a fresh clone writes only the event.
$(VENV)/.installed: pyproject.toml layers/common/requirements.txt
	@echo "creating $(VENV) with $(BOOTSTRAP_PYTHON) and installing the project and its tools (a few minutes, once)" >&2
	@$(BOOTSTRAP_PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install -q --upgrade pip >&2
	@$(PY) -m pip install -q -e '.[dev]' >&2
	@touch $@

venv: $(VENV)/.installed ## create .venv with the project and its tools

demo: venv ## run the whole pipeline locally on the sample events and print what reached Mixpanel
	$(PY) -m devstack.cli demo

dev: venv ## start the local stack (receiver on :3000, local Mixpanel on :3001) until Ctrl-C; SAM_LOCAL=1 for sam local
	$(PY) -m devstack.cli dev

test: venv lint docs-check unit integration fuzz e2e template build security ## everything CI runs

lint: venv ## ruff, the import graph (no circles, the layer by role) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=layers/common:. $(BIN)/lint-imports
	$(BIN)/mypy
	@for handler in functions/*/app.py; do MYPYPATH=layers/common $(BIN)/mypy --follow-imports=silent $$handler || exit 1; done

unit: venv ## unit tests (pure logic, signatures, mapping)
	$(PY) -m pytest tests/unit -q -n 2 $(PYTEST_ARGS)

integration: venv ## handlers against moto's server mode and the Mixpanel test server
	$(PY) -m pytest tests/integration -q -n 2 $(PYTEST_ARGS)

e2e: venv ## the local stack as a subprocess, the demo, the browser page
	$(PY) -m pytest tests/e2e -q $(PYTEST_ARGS)

template: venv ## cfn-lint and sam validate
	$(BIN)/cfn-lint template.yaml
	$(BIN)/cfn-lint template.yaml --parameters SnapStart=PublishedVersions
	$(BIN)/cfn-lint template.yaml --parameters StripeEventSourceName=aws.partner/stripe.com/ed_lint Mode=test
	$(BIN)/sam validate --lint
	$(BIN)/sam validate --region us-east-1

build: venv ## sam build (needs python3.13, which the venv provides); ARCHITECTURE=x86_64 for x86 machines
	PATH="$(abspath $(BIN)):$$PATH" ARCHITECTURE=$(ARCHITECTURE) $(BIN)/sam build --parameter-overrides Architecture=$(ARCHITECTURE)

sam-local-test: venv ## sam build, sam local invoke of both functions and start-api in Docker against make dev's services (root on Linux; skips elsewhere)
	RUN_SAM_LOCAL=1 $(PY) -m pytest tests/sam_local -q -s -rs -p no:cacheprovider $(PYTEST_ARGS)

bench: venv ## benchmarks vs the alternatives, same run: prints tables, writes bench/results/*.json (docs/performance.md)
	$(PY) -m bench

bench-smoke: venv ## the benchmarks with tiny counts: checks the harness works, not the figures
	$(PY) -m bench --smoke --out .aws-sam/bench/results-smoke

docs: venv ## regenerate docs/events.md from the catalog
	$(PY) -m revenue_webhooks.docs > docs/events.md

docs-check: venv
	@$(PY) -m revenue_webhooks.docs | diff -u docs/events.md - || (echo "docs/events.md is stale: run make docs" && exit 1)

event: venv ## a freshly signed API Gateway event: make event PROVIDER=stripe NAME=checkout.session.completed [ARGS="--stack NAME"]
	@$(PY) -m devstack.cli event --provider $(or $(PROVIDER),stripe) --name $(or $(NAME),checkout.session.completed) $(ARGS)

redrive: venv ## move dead letters back to EventsQueue: make redrive ARGS="--list" / ARGS="--reason mixpanel_429 --dry-run"
	@$(PY) -m ops.cli redrive $(ARGS)

replay: venv ## post stored provider events, signed, to a webhook URL: make replay ARGS="--provider stripe events/stripe"
	@$(PY) -m ops.cli replay $(ARGS)

backfill: venv ## Stripe's (or --provider appstore, Apple's) history into the pipeline, resumable: make backfill ARGS="--since 2024-01-01 [--until DATE] [--dry-run]"
	$(PY) -m ops.cli backfill $(ARGS)

reconcile: venv ## Stripe vs ledger vs Mixpanel per currency and object: make reconcile ARGS="--since DATE --until DATE [--json]"
	$(PY) -m ops.cli reconcile $(ARGS)

clean: ## remove the venv, build and local state
	rm -rf $(VENV) .aws-sam .devstack .backfill

fuzz: venv ## short fuzzing of the receiver: hypothesis properties and an atheris run (the long form: make reliability)
	$(PY) -m pytest tests/fuzz -q $(PYTEST_ARGS)

fuzz-atheris: venv ## coverage-guided fuzzing of the receiver: make fuzz-atheris FUZZ_SECONDS=600
	@mkdir -p .devstack/fuzz-corpus
	$(PY) tests/fuzz/atheris_receiver.py -max_len=8192 -max_total_time=$(or $(FUZZ_SECONDS),60) .devstack/fuzz-corpus

reliability: venv ## the long fuzz, load and crash runs whose figures docs/reliability.md reports (about 25 minutes)
	RUN_SLOW=1 $(PY) -m pytest tests/fuzz tests/integration/test_load.py tests/integration/test_crash_safety.py -q -s -p no:logging $(PYTEST_ARGS)
	$(MAKE) fuzz-atheris FUZZ_SECONDS=$(or $(FUZZ_SECONDS),600)

# checkov pins boto3 1.35 and packaging<24, which the project's pins exclude: it gets a venv of its own.
CHECKOV_VERSION := 3.3.30
$(VENV)/checkov/.installed-$(CHECKOV_VERSION): | venv
	$(PY) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)
	@touch $@

security: venv $(VENV)/checkov/.installed-$(CHECKOV_VERSION) ## checkov on template.yaml, bandit on the shipped code, pip-audit on the pins
	$(VENV)/checkov/bin/checkov -f template.yaml --framework cloudformation --skip-download --compact --quiet
	$(BIN)/bandit -q -c pyproject.toml -r layers/common functions
	@# pip-audit says "No known vulnerabilities found" even when no database answered: the wrapper says "not audited".
	$(PY) tools/audit_dependencies.py --what "the layer's pins" -- -r layers/common/requirements.txt $(PIP_AUDIT_FLAGS)
	$(PY) tools/audit_dependencies.py --what "the venv's packages" -- --skip-editable $(PIP_AUDIT_FLAGS)
