"""SageMaker training entry point (SAGEMAKER_PROGRAM=train.py): the trainer lives in model_code.training."""

import sys

from model_code.training.train import cli

if __name__ == "__main__":
    sys.exit(cli())  # bad data or hyperparameters: one "training failed: ..." line and exit code 2
