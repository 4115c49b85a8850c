# Training workflow and approval deploys (issue 8 items 1-2). Usage: docs/training-workflow.md.
# Included by the top Makefile (-include mk/*.mk), which defines VENV, PY and `venv`.

TRAINING_WORKFLOW_TESTS := tests/stacks/test_training_stack.py tests/stacks/test_approval_stack.py \
	tests/stacks/approval_runtime
TRAINING_WORKFLOW_PATHS := stacks/training stacks/approval $(TRAINING_WORKFLOW_TESTS)

.PHONY: test-training-workflow lint-training-workflow

test-training-workflow: venv  ## training/approval stack tests + the deploy handler (moto S3, Stubber SageMaker)
	$(PY) -m pytest $(TRAINING_WORKFLOW_TESTS) -q --durations=10

lint-training-workflow: venv  ## ruff + mypy over the training and approval stacks and their tests
	$(VENV)/bin/ruff check $(TRAINING_WORKFLOW_PATHS)
	$(VENV)/bin/mypy $(TRAINING_WORKFLOW_PATHS)
