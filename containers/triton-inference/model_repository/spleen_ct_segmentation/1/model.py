"""Triton python-backend entry: the spleen pipeline lives in model_code.serving.triton_backend."""

from model_code.serving.triton_backend import TritonPythonModel

__all__ = ["TritonPythonModel"]
