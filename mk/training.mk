# SageMaker script-mode trainer (issue 5): focused tests, the CPU demo, a local training run.
# Included by the top Makefile (-include mk/*.mk), which defines VENV, PY and `venv`.

DEMO_OUTPUT ?= demo-output
DEMO_ARGS ?=
TRAIN_ARGS ?=

.PHONY: demo test-training train-local

demo: venv  ## train the spleen UNet on CPU phantoms, segment a fresh DICOM series, print Dice (demo-output/)
	$(PY) -m model_code.training.demo --output $(DEMO_OUTPUT) $(DEMO_ARGS)

test-training: venv  ## trainer tests only (overfit, resume, torchrun, SM_* variables, bad input)
	$(PY) -m pytest tests/model_code/training -q --durations=10

train-local: venv  ## the SageMaker entry point with local defaults (TRAIN_ARGS="--train-channel DIR --epochs 5")
	$(PY) -m model_code.training.train --checkpoint-dir build/checkpoints $(TRAIN_ARGS)
