# MONAI Imaging Platform. `make synth` and `make test` set up a fresh machine; `make help` lists the rest.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.DEFAULT_GOAL := help

# Node 20 is what these machines have; jsii warns on every call otherwise.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_VENV := .venv-tools
STAGE ?= dev
CDK := npx --no-install cdk
CDK_OUT := cdk.out
# Other mk/*.mk files append the targets their tests need (servers' venvs, system tools).
TEST_PREREQS :=
# This machine's pip configuration names local indexes that may be absent; pip warns once per package.
PIP_NOISE := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: help venv node tools setup synth test lint typecheck pytest ls diff deploy bootstrap bench clean

help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt 2>&1 | { $(PIP_NOISE); }
	@touch $@

venv: $(VENV)/.installed  ## create .venv with the pinned dependencies (no-op when current)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node: node_modules/.installed  ## install the pinned CDK CLI (npm ci)

$(TOOLS_VENV)/.installed: requirements-tools.txt
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt 2>&1 | { $(PIP_NOISE); }
	@touch $@

tools: $(TOOLS_VENV)/.installed  ## checkov in its own venv (it pins an old boto3)

-include mk/*.mk

setup: venv node tools $(TEST_PREREQS)  ## everything synth and test need

synth: venv node  ## synthesize every stack on the embedded default config, with cdk-nag (STAGE=dev)
	@rm -rf $(CDK_OUT)
	$(CDK) synth --quiet -c stage=$(STAGE) --output $(CDK_OUT)
	@PYTHONPATH=. $(PY) scripts/synth_summary.py $(CDK_OUT)
	@$(PY) -m scripts.idle_cost $(CDK_OUT)

lint: venv  ## ruff and mypy
	$(PY) -m ruff check .
	$(PY) -m mypy .

pytest: setup  ## the test suite only
	$(PY) -m pytest

test: setup lint pytest  ## lint, then every test (stacks, compliance, model code, containers)

ls: venv node  ## list the stacks of STAGE
	$(CDK) ls -c stage=$(STAGE)

diff: venv node  ## compare STAGE with what is deployed (needs AWS credentials)
	$(CDK) diff --all -c stage=$(STAGE)

bootstrap: venv node  ## cdk bootstrap the account and region of STAGE (needs AWS credentials)
	$(CDK) bootstrap -c stage=$(STAGE)

bench: bench-healthimaging bench-segmentation bench-bundle bench-serving bench-backfill  ## every side-by-side benchmark (prints ratios)

clean:  ## remove build outputs (keeps the venvs)
	rm -rf $(CDK_OUT) .pytest_cache .mypy_cache .ruff_cache build
