# Event-driven inference and monitoring stacks (issue 7, items 4-5). Usage: docs/inference.md.

INFERENCE_TESTS = tests/stacks/test_inference_stack.py tests/stacks/test_monitoring_stack.py tests/stacks/inference_runtime
INFERENCE_PATHS = stacks/inference stacks/monitoring $(INFERENCE_TESTS)

.PHONY: test-inference lint-inference

test-inference: venv  ## inference/monitoring stack tests and their Lambda handlers (moto + Stubber)
	$(PY) -m pytest $(INFERENCE_TESTS) -q --durations=10

lint-inference: venv  ## ruff + mypy over the inference and monitoring stacks and their tests
	$(VENV)/bin/ruff check $(INFERENCE_PATHS)
	$(VENV)/bin/mypy $(INFERENCE_PATHS)
