"""SageMaker PyTorch inference entry point (SAGEMAKER_PROGRAM=inference.py): the contract, nothing more.

Decoding, fetching, segmentation, encoding and the error mapping live in model_code.serving (see its
handler module for why client errors travel as values instead of exceptions).
"""

from model_code.serving.handler import input_fn, model_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
