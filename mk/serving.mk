# Serving stack (async + Triton multi-model endpoints), idle cost, model archives (issue 7, items 3 and 6).
# Usage: docs/infrastructure.md. Included by the top Makefile, which defines VENV, PY, CDK_OUT and `venv`.

SERVING_TESTS = tests/stacks/test_serving_stack.py tests/stacks/test_idle_cost.py
SERVING_PATHS = stacks/serving stacks/pricing.py scripts/idle_cost.py scripts/add_model_archive.py $(SERVING_TESTS)

.PHONY: test-serving lint-serving idle-cost add-model-archive

test-serving: venv  ## serving stack, multi-model endpoint and idle-cost tests
	$(PY) -m pytest $(SERVING_TESTS) -q --durations=10

lint-serving: venv  ## ruff + mypy over the serving stack, the price table and the scripts
	$(VENV)/bin/ruff check $(SERVING_PATHS)
	$(VENV)/bin/mypy $(SERVING_PATHS)

idle-cost: venv  ## the idle cost of the last synth in $(CDK_OUT) (make synth prints it too)
	$(PY) -m scripts.idle_cost $(CDK_OUT)

add-model-archive: venv  ## package MODEL_DIR as NAME.tar.gz under the multi-model prefix of BUCKET (AWS credentials)
	@test -n "$(MODEL_DIR)" -a -n "$(NAME)" -a -n "$(BUCKET)" || { echo "usage: make add-model-archive MODEL_DIR=dir NAME=name BUCKET=<ModelArtifactsBucketName>"; exit 2; }
	$(PY) -m scripts.add_model_archive --model-dir $(MODEL_DIR) --name $(NAME) --bucket $(BUCKET)
