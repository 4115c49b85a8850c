"""SageMaker training entry point (SAGEMAKER_PROGRAM=train.py): the trainer lives in model_code.training."""

from model_code.training.train import main

if __name__ == "__main__":
    main()
