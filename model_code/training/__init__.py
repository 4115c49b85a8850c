"""The SageMaker script-mode trainer: ``python -m model_code.training.train`` (see docs/training.md)."""
