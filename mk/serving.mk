# Serving stack (async + Triton multi-model endpoints), idle cost, (issue 7, items 3 and 6); model archives: `monai-platform archives add`.
# Usage: docs/infrastructure.md. Included by the top Makefile, which defines VENV, PY, CDK_OUT and `venv`.

SERVING_TESTS = tests/stacks/test_serving_stack.py tests/stacks/test_idle_cost.py
SERVING_PATHS = stacks/serving stacks/pricing.py scripts/idle_cost.py $(SERVING_TESTS)

.PHONY: test-serving lint-serving idle-cost

test-serving: venv  ## serving stack, multi-model endpoint and idle-cost tests
	$(PY) -m pytest $(SERVING_TESTS) -q --durations=10

lint-serving: venv  ## ruff + mypy over the serving stack, the price table and the scripts
	$(VENV)/bin/ruff check $(SERVING_PATHS)
	$(VENV)/bin/mypy $(SERVING_PATHS)

idle-cost: venv  ## the idle cost of the last synth in $(CDK_OUT) (make synth prints it too)
	$(PY) -m scripts.idle_cost $(CDK_OUT)
